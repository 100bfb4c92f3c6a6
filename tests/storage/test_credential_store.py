"""The credential tables on SQLite and PostgreSQL: tokens by hash, revocation ending sessions, single-use links."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bot.credentials import SignInLink, WebSession, digest, issue_token
from bot.events import utcnow
from storage import SqlStore
from tests.storage.conftest import StoreFactory


def session(person: str, token_id: str | None = None, name: str = "s1") -> WebSession:
    now = utcnow()
    return WebSession(hash=digest(name), person=person, csrf="c", method="token" if token_id else "link",
                      token_id=token_id, created_at=now, expires_at=now + timedelta(hours=12))


async def test_tokens_are_found_by_hash_and_revocation_ends_their_sessions(store: SqlStore) -> None:
    """Only the hash is stored; revoking by id ends the token's sessions and no one else's."""
    secret, record = issue_token("alice@example.com", "laptop", timedelta(days=1))
    await store.add_api_token(record)
    found = await store.api_token_by_hash(digest(secret))
    assert found is not None and found.id == record.id and found.state() == "active"
    assert await store.api_token_by_hash(digest(secret + "x")) is None
    await store.add_session(session("alice@example.com", record.id, "from-token"))
    await store.add_session(session("alice@example.com", None, "from-link"))
    [revoked] = await store.revoke_api_tokens(utcnow(), key=record.id)
    assert revoked.id == record.id
    assert await store.session_by_hash(digest("from-token")) is None
    assert await store.session_by_hash(digest("from-link")) is not None
    again = await store.api_token_by_hash(digest(secret))
    assert again is not None and again.state() == "revoked"
    assert await store.revoke_api_tokens(utcnow(), key=record.id) == []  # already revoked: nothing new


async def test_revoke_every_token_of_a_person_case_insensitively(store: SqlStore) -> None:
    """``--user`` revocation matches the person however it is capitalised and leaves others alone."""
    for person in ("Bob@Example.com", "bob@example.com", "carol@example.com"):
        await store.add_api_token(issue_token(person)[1])
    revoked = await store.revoke_api_tokens(utcnow(), person="BOB@example.com")
    assert sorted(t.person for t in revoked) == ["Bob@Example.com", "bob@example.com"]
    assert [t.state() for t in await store.api_tokens("carol@example.com")] == ["active"]


async def test_a_link_is_used_exactly_once_even_by_racing_stores(new_store: StoreFactory) -> None:
    """Two processes using the same link at once: exactly one gets it."""
    first, second = new_store(), new_store()
    now = utcnow()
    link = SignInLink(hash=digest("link"), identity="alice@example.com", created_at=now,
                      expires_at=now + timedelta(minutes=10))
    assert await first.add_signin_link(link, limit=5, since=now - timedelta(minutes=15))
    results = await asyncio.gather(*(s.consume_signin_link(digest("link"), utcnow()) for s in (first, second) * 3))
    assert [r.identity for r in results if r is not None] == ["alice@example.com"]


async def test_link_rate_limit_counts_recent_links_per_identity(store: SqlStore) -> None:
    """The limit counts only this identity's links made since ``since``."""
    now = utcnow()
    window = now - timedelta(minutes=15)

    def link(name: str, identity: str = "alice@example.com", age: timedelta = timedelta(0)) -> SignInLink:
        made = now - age
        return SignInLink(hash=digest(name), identity=identity, created_at=made,
                          expires_at=made + timedelta(minutes=10))

    assert await store.add_signin_link(link("old", age=timedelta(minutes=20)), limit=2, since=window)
    assert await store.add_signin_link(link("a"), limit=2, since=window)
    assert await store.add_signin_link(link("b"), limit=2, since=window)
    assert not await store.add_signin_link(link("c"), limit=2, since=window)
    assert await store.add_signin_link(link("d", identity="carol@example.com"), limit=2, since=window)
    assert await store.consume_signin_link(digest("c"), now) is None  # never stored
    assert await store.consume_signin_link(digest("old"), now) is None  # expired
