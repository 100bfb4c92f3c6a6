"""SQL for credentials: personal API tokens, inbox sessions and sign-in links (cold tables, SQLAlchemy Core).

Mixed into SqlStore; uses its ``engine`` (writes) and ``reader`` (reads). Secrets never reach this module: every
lookup is by the SHA-256 of a secret.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.credentials import ApiToken, SignInLink, WebSession
from storage.schema import api_tokens, signin_links, web_sessions

_KEEP_USED_LINKS_SECONDS = 86400.0  # used or expired links are kept a day for the rate limit, then purged


def _at(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _ts(value: float | None) -> datetime | None:
    return _at(value) if value is not None else None


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _token(row: Any) -> ApiToken:
    return ApiToken(id=row.id, person=row.person, label=row.label, hash=row.hash, created_at=_at(row.created_at),
                    expires_at=_ts(row.expires_at), revoked_at=_ts(row.revoked_at),
                    last_used_at=_ts(row.last_used_at))


class CredentialStore:
    """Store methods for the credential tables."""

    engine: AsyncEngine
    reader: AsyncEngine

    # --- personal API tokens --------------------------------------------------------------------------------

    async def add_api_token(self, token: ApiToken) -> None:
        """Insert a token record (its hash, never the token)."""
        async with self.engine.begin() as conn:
            await conn.execute(insert(api_tokens).values(
                id=token.id, person=token.person, label=token.label, hash=token.hash,
                created_at=token.created_at.timestamp(), expires_at=_epoch(token.expires_at),
                revoked_at=_epoch(token.revoked_at), last_used_at=_epoch(token.last_used_at),
            ))

    async def api_tokens(self, person: str | None = None) -> list[ApiToken]:
        """Every token record (of one person), oldest first."""
        query = select(api_tokens).order_by(api_tokens.c.created_at, api_tokens.c.id)
        if person is not None:
            query = query.where(func.lower(api_tokens.c.person) == person.lower())
        async with self.reader.connect() as conn:
            return [_token(r) for r in (await conn.execute(query)).all()]

    async def api_token_by_hash(self, token_hash: str) -> ApiToken | None:
        """The token whose secret hashes to ``token_hash`` (whatever its state)."""
        async with self.reader.connect() as conn:
            row = (await conn.execute(select(api_tokens).where(api_tokens.c.hash == token_hash))).first()
        return _token(row) if row is not None else None

    async def touch_api_token(self, token_id: str, at: datetime) -> None:
        """Record that a token was used."""
        async with self.engine.begin() as conn:
            await conn.execute(update(api_tokens).where(api_tokens.c.id == token_id)
                               .values(last_used_at=at.timestamp()))

    async def revoke_api_tokens(self, at: datetime, *, key: str | None = None,
                                person: str | None = None) -> list[ApiToken]:
        """Revoke the active token with id or hash ``key``, or every active token of ``person``; end their
        inbox sessions in the same transaction. Returns the tokens revoked now."""
        condition = (api_tokens.c.id == key) | (api_tokens.c.hash == key) if key is not None else (
            func.lower(api_tokens.c.person) == (person or "").lower())
        async with self.engine.begin() as conn:
            rows = (await conn.execute(select(api_tokens).where(condition, api_tokens.c.revoked_at.is_(None)))).all()
            ids = [r.id for r in rows]
            if ids:
                await conn.execute(update(api_tokens).where(api_tokens.c.id.in_(ids)).values(revoked_at=at.timestamp()))
                await conn.execute(delete(web_sessions).where(web_sessions.c.token_id.in_(ids)))
        return [_token(r).model_copy(update={"revoked_at": at}) for r in rows]

    # --- inbox sessions -------------------------------------------------------------------------------------

    async def add_session(self, session: WebSession) -> None:
        """Insert a session; expired ones are purged on the way."""
        async with self.engine.begin() as conn:
            await conn.execute(delete(web_sessions).where(web_sessions.c.expires_at < session.created_at.timestamp()))
            await conn.execute(insert(web_sessions).values(
                hash=session.hash, person=session.person, csrf=session.csrf, method=session.method,
                token_id=session.token_id, binding=session.binding, created_at=session.created_at.timestamp(),
                expires_at=session.expires_at.timestamp(),
            ))

    async def session_by_hash(self, session_hash: str) -> WebSession | None:
        """The stored session with this id hash (the caller checks expiry and binding)."""
        async with self.reader.connect() as conn:
            row = (await conn.execute(select(web_sessions).where(web_sessions.c.hash == session_hash))).first()
        if row is None:
            return None
        return WebSession(hash=row.hash, person=row.person, csrf=row.csrf, method=row.method, token_id=row.token_id,
                          binding=row.binding, created_at=_at(row.created_at), expires_at=_at(row.expires_at))

    async def delete_session(self, session_hash: str) -> bool:
        """End a session (logout); False if it did not exist."""
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(web_sessions).where(web_sessions.c.hash == session_hash))
        return bool(result.rowcount)

    # --- sign-in links --------------------------------------------------------------------------------------

    async def add_signin_link(self, link: SignInLink, *, limit: int, since: datetime) -> bool:
        """Insert a link unless ``limit`` links for its identity were created since ``since`` (then False)."""
        now = link.created_at.timestamp()
        async with self.engine.begin() as conn:
            await conn.execute(delete(signin_links).where(signin_links.c.expires_at < now - _KEEP_USED_LINKS_SECONDS))
            recent = (await conn.execute(
                select(func.count()).select_from(signin_links)
                .where(signin_links.c.identity == link.identity, signin_links.c.created_at >= since.timestamp())
            )).scalar() or 0
            if recent >= limit:
                return False
            await conn.execute(insert(signin_links).values(
                hash=link.hash, identity=link.identity, created_at=now, expires_at=link.expires_at.timestamp(),
            ))
        return True

    async def consume_signin_link(self, link_hash: str, at: datetime) -> SignInLink | None:
        """Mark an unused, unexpired link used and return it; None if it is unknown, used or expired. Atomic:
        of two simultaneous uses exactly one gets the link."""
        now = at.timestamp()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(signin_links)
                .where(signin_links.c.hash == link_hash, signin_links.c.used_at.is_(None),
                       signin_links.c.expires_at > now)
                .values(used_at=now)
            )
            if result.rowcount != 1:
                return None
            row = (await conn.execute(select(signin_links).where(signin_links.c.hash == link_hash))).one()
        return SignInLink(hash=row.hash, identity=row.identity, created_at=_at(row.created_at),
                          expires_at=_at(row.expires_at), used_at=_ts(row.used_at))
