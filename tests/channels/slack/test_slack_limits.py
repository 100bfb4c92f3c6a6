"""Slack's limits hold for every payload opsgate builds, whatever the arguments and texts (Hypothesis).

"User text" below is anything a person, the model or a tool can put in: huge, emoji, NUL, Slack's control
sequences (``<!channel>``, ``<@U…>``, ``<http://…|…>``) and ``&``. Every message and modal must pass the checks
of ``channels.slack.limits``, and in every mrkdwn text and notification ``text`` the only ``<…>`` tokens and
``&`` entities are the ones opsgate writes itself.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.events import (
    ActionResult,
    ApprovalDecided,
    ApprovalRequested,
    ArgumentChange,
    Done,
    ErrorEvent,
    Event,
    HumanInputRequested,
    UserMessage,
    Via,
)
from bot.thread import Thread
from channels.slack import limits
from channels.slack.limits import TRUNCATED, escape, fit, fit_escaped, length, message_problems, modal_problems
from channels.slack.slack_blocks import (
    MAX_EDIT_FIELDS,
    approval_card,
    decided_card,
    edit_modal,
    edit_plan,
    reject_modal,
    show_value,
)
from channels.slack.slack_interactions import edited_arguments
from channels.slack.slack_outbound import SlackCardUpdate, SlackPost, messages_for
from channels.slack.slack_payloads import CardRef, ViewSubmission
from channels.slack.verify import MAX_BODY_BYTES
from tests.channels.slack.slack_requests import submission

SPECIALS = ["<!channel>", "<!here>", "<@U0ADMIN1>", "<#C0GENERAL>", "<http://evil.example|click me>", "&",
            "&amp;", "<", ">", "\x00", "😀", "👩‍👩‍👧", "\ud83d", "*bold*", "`code`", "\n"]
huge = st.builds(lambda piece, times: piece * times, st.sampled_from(["😀", "&", "<!channel>", "a", "\x00", "é"]),
                 st.integers(min_value=1, max_value=12_000))
user_text = st.one_of(st.text(max_size=40), st.sampled_from(SPECIALS), huge,
                      st.lists(st.sampled_from(SPECIALS + ["x", " "]), max_size=30).map("".join))
identity = st.one_of(st.sampled_from(["UCAROL01", "W0DAVE001", "carol@example.com"]), user_text)
value = st.one_of(user_text, st.integers(), st.none(), st.booleans(), st.lists(user_text, max_size=4),
                  st.dictionaries(st.text(max_size=10), user_text, max_size=3))
arguments = st.one_of(
    st.dictionaries(user_text, value, max_size=15),
    st.integers(min_value=0, max_value=160).map(lambda n: {f"arg{i}": f"v{i}" for i in range(n)}),
)
AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
OUR_TOKEN = re.compile(r"<@[UW][A-Z0-9]+>|<!date\^\d+\^\{date_short_pretty\} at \{time\}\|[0-9T:+-]+>")
ENTITY = re.compile(r"&(amp|lt|gt);")
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def mrkdwn_texts(obj: Any) -> list[str]:
    """Every mrkdwn text object's text inside blocks or a view."""
    found: list[str] = []
    if isinstance(obj, dict):
        if obj.get("type") == "mrkdwn":
            found.append(str(obj["text"]))
        for item in obj.values():
            found.extend(mrkdwn_texts(item))
    elif isinstance(obj, list):
        for item in obj:
            found.extend(mrkdwn_texts(item))
    return found


def assert_no_raw_control(text: str) -> None:
    """No ``<…>`` but ours, and ``&`` only as an entity: nothing from user text can mention, link or break."""
    rest = OUR_TOKEN.sub("", text)
    assert "<" not in rest and ">" not in rest, text[:300]
    assert "&" not in ENTITY.sub("", rest), text[:300]


def request(args: dict[str, Any], name: str, reason: str | None, requester: str | None,
            approvers: list[str], group: str | None) -> ApprovalRequested:
    return ApprovalRequested(approval_id="ap1", action_id="ac1", name=name, arguments=args, reason=reason,
                             group=group, approvers=approvers, requester=requester, four_eyes=True, at=AT)


# --- fit ----------------------------------------------------------------------------------------------------


def test_fit_keeps_what_fits_and_says_when_it_cut() -> None:
    """Short text is unchanged; long text ends with '…(truncated)' within the limit."""
    assert fit("hello", 5) == "hello"
    cut = fit("x" * 500, 200)
    assert cut.endswith(TRUNCATED) and length(cut) == 200


def test_fit_never_splits_an_entity_a_token_or_an_emoji() -> None:
    """The cut backs off to before '&amp;', '<@U…>' and counts an emoji as two units."""
    text = escape("a" * 180 + "&" + "b" * 100)
    assert fit(text, 195) == "a" * 180 + TRUNCATED
    token = "a" * 170 + "<@UCAROL01>" + "b" * 100
    assert fit(token, 190) == "a" * 170 + TRUNCATED
    emoji = "😀" * 200
    cut = fit(emoji, 150)
    assert length(cut) <= 150 and cut.startswith("😀" * 69) and cut.endswith(TRUNCATED)


@given(text=user_text, limit=st.integers(min_value=1, max_value=5000))
@PROPERTY
def test_fit_escaped_is_within_the_limit_and_never_breaks_markup(text: str, limit: int) -> None:
    """Any text at any limit: within the limit, a prefix of the escaped text, no broken entity."""
    fitted = fit_escaped(text, limit)
    assert length(fitted) <= limit
    body = fitted.removesuffix(TRUNCATED).removesuffix("…")
    assert escape(text).startswith(body)
    assert "&" not in ENTITY.sub("", body) and "<" not in body


# --- every builder ------------------------------------------------------------------------------------------


@given(args=arguments, name=user_text, reason=st.none() | user_text, requester=st.none() | identity,
       approvers=st.lists(identity, max_size=60), group=st.none() | user_text)
@PROPERTY
def test_approval_card_is_within_every_limit(
    args: dict[str, Any], name: str, reason: str | None, requester: str | None, approvers: list[str],
    group: str | None,
) -> None:
    """The card and its notification text pass every check; user text never becomes markup."""
    text, blocks = approval_card("th1", request(args, name, reason, requester, approvers, group))
    assert message_problems(text, blocks) == []
    for mrkdwn in [text, *mrkdwn_texts(blocks)]:
        assert_no_raw_control(mrkdwn)


@given(args=arguments, edited=st.none() | arguments, name=user_text, by=identity, comment=st.none() | user_text,
       changes=st.lists(st.tuples(user_text, value, value), max_size=60))
@PROPERTY
def test_decided_card_is_within_every_limit(
    args: dict[str, Any], edited: dict[str, Any] | None, name: str, by: str, comment: str | None,
    changes: list[tuple[str, Any, Any]],
) -> None:
    """The card after a decision (edits, comment) passes every check; user text never becomes markup."""
    decision = ApprovalDecided(
        approval_id="ap1", action_id="ac1", approved=comment is None, by=by, comment=comment, at=AT,
        arguments=edited, changes=[ArgumentChange(field=f, old=o, new=n) for f, o, n in changes],
    )
    text, blocks = decided_card(request(args, name, None, None, [], None), decision)
    assert message_problems(text, blocks) == []
    for mrkdwn in [text, *mrkdwn_texts(blocks)]:
        assert_no_raw_control(mrkdwn)


@given(args=arguments, name=user_text, required=st.sets(user_text, max_size=5))
@PROPERTY
def test_modals_are_within_every_limit(args: dict[str, Any], name: str, required: set[str]) -> None:
    """Reject and edit modals pass every check; the edit modal offers at most MAX_EDIT_FIELDS inputs."""
    ref = CardRef(thread_id="0" * 32, approval_id="1" * 32, channel="C0OPS0001", message_ts="1732270010.000200",
                  thread_ts="1732270000.000100")
    reject = reject_modal(ref, name, args)
    assert modal_problems(reject) == []
    plan = edit_plan(args, required)
    assert len(plan.fields) <= MAX_EDIT_FIELDS
    assert {f.name for f in plan.fields} | set(plan.kept) == set(args) - {"reason"}
    edit = edit_modal(ref, name, args, plan)
    assert modal_problems(edit) == []
    for view in (reject, edit):
        for mrkdwn in mrkdwn_texts(view["blocks"]):
            assert_no_raw_control(mrkdwn)


@given(first=user_text, asker=st.none() | identity, texts=st.lists(user_text, min_size=1, max_size=4),
       args=arguments, action=user_text)
@PROPERTY
def test_every_outbound_message_is_within_every_limit(
    first: str, asker: str | None, texts: list[str], args: dict[str, Any], action: str,
) -> None:
    """Root posts, replies, results, errors, cards and card updates of a Slack thread pass every check."""
    via = Via(channel="slack", conversation="C0OPS0001", message=None)
    started = Thread(id="th1", events=[]).with_events([UserMessage(text=first, user=asker, via=via)])
    approval = ApprovalRequested(approval_id="ap1", action_id="ac1", name=action, arguments=args, at=AT)
    new: list[Event] = [
        HumanInputRequested(message=texts[0]), Done(message=texts[-1]),
        ActionResult(action_id="ac1", name=action, ok=True, result=texts[0]),
        ActionResult(action_id="ac1", name=action, ok=False, result=texts[-1]),
        ErrorEvent(kind="internal", message=texts[0]), approval,
    ]
    thread = started.with_events(new)
    decided = ApprovalDecided(approval_id="ap1", action_id="ac1", approved=True, by=asker or "api", at=AT)
    out = messages_for(started, started.events) + messages_for(thread, new)
    out += messages_for(thread.with_events([decided]), [decided])
    assert [type(m) for m in out].count(SlackCardUpdate) == 1 and len(out) == 8
    for message in out:
        assert message_problems(message.text, message.blocks) == [], message.text[:200]
        assert_no_raw_control(message.text)
        if isinstance(message, SlackPost) and message.role == "root":
            quoted = message.text.rsplit(": `", 1)[1]
            assert quoted.endswith("`") and "`" not in quoted[:-1]  # the request cannot end the code span


def submitted(view: dict[str, Any], changed: dict[str, str] | None = None) -> ViewSubmission:
    """The view_submission Slack sends for ``view``: every input as it was, except ``changed`` (by block id)."""
    values: dict[str, dict[str, str | None]] = {}
    for block in view["blocks"]:
        if block["type"] == "input":
            typed = (changed or {}).get(block["block_id"], block["element"].get("initial_value"))
            values[block["block_id"]] = {"value": typed}
    return ViewSubmission.model_validate(submission(view["callback_id"], view["private_metadata"], values,
                                                    user="UCAROL01"))


@given(args=arguments, required=st.sets(user_text, max_size=5), typed=st.text(min_size=1, max_size=30))
@PROPERTY
def test_an_edit_changes_exactly_what_was_typed(args: dict[str, Any], required: set[str], typed: str) -> None:
    """Submitting the edit modal untouched gives back the arguments exactly; typing into one input changes one."""
    plan = edit_plan(args, required)
    view = edit_modal(CardRef(thread_id="th1", approval_id="ap1"), "act", args, plan)
    same, errors = edited_arguments(submitted(view), args, plan)
    assert (same, errors) == (args, {})
    text_fields = [i for i, f in enumerate(plan.fields) if not f.json_value]
    if text_fields and typed.strip():
        index = text_fields[0]
        changed, errors = edited_arguments(submitted(view, {f"arg_{index}": typed}), args, plan)
        name = plan.fields[index].name
        unchanged = typed.strip() == show_value(args[name]).strip()  # typed what was there: kept as it was
        assert errors == {} and changed == {**args, name: args[name] if unchanged else typed.strip()}


def test_limits_match_slacks_documentation() -> None:
    """The numbers the checks use are the documented ones (a typo here would let oversize payloads through)."""
    documented = {
        "MESSAGE_BLOCKS": 50, "MODAL_BLOCKS": 100, "SECTION_TEXT": 3000, "SECTION_FIELDS": 10, "FIELD_TEXT": 2000,
        "HEADER_TEXT": 150, "BUTTON_TEXT": 75, "BUTTON_VALUE": 2000, "BLOCK_ID": 255, "ACTION_ID": 255,
        "PRIVATE_METADATA": 3000, "MODAL_TITLE": 24, "MODAL_BUTTON": 24, "INPUT_LABEL": 2000, "OPTION_TEXT": 75,
        "MESSAGE_TEXT": 40000, "TEXT": 4000,
    }
    assert {name: getattr(limits, name) for name in documented} == documented


def test_checks_catch_what_slack_refuses() -> None:
    """The checks themselves find oversize pieces (else the properties above would prove nothing)."""
    too_many = [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}] * 51
    assert message_problems("x", too_many) == ["51 blocks > 50"]
    field = {"type": "section", "fields": [{"type": "mrkdwn", "text": "x" * 2001}]}
    assert message_problems("", [field]) == ["text of 0 characters (1-4000)",
                                             "blocks[0].fields[0]: 2001 characters > 2000"]
    header = {"type": "header", "block_id": "b" * 256, "text": {"type": "plain_text", "text": "😀" * 76}}
    assert len(message_problems("x", [header])) == 2
    view = {"type": "modal", "title": {"type": "plain_text", "text": "x" * 25}, "private_metadata": "m" * 3001,
            "blocks": []}
    assert modal_problems(view) == ["title: 25 characters > 24", "private_metadata: id of 3001 characters > 3000"]


def test_the_largest_edit_submission_fits_the_body_limit() -> None:
    """Ten full inputs of 3-byte characters, echoed and typed, URL-encoded as Slack posts them: under 1 MiB."""
    args = {f"argument_{i}_" + "n" * 180: "字" * limits.INPUT_VALUE for i in range(MAX_EDIT_FIELDS + 5)}
    view = edit_modal(CardRef(thread_id="0" * 32, approval_id="1" * 32), "deploy", args, edit_plan(args, set()))
    typed = {b["block_id"]: "界" * limits.INPUT_VALUE for b in view["blocks"] if b["type"] == "input"}
    payload = submission(view["callback_id"], view["private_metadata"], {k: {"value": v} for k, v in
                                                                         typed.items()}, user="UCAROL01")
    payload["view"]["blocks"] = view["blocks"]
    for escaped in (False, True):  # Slack's JSON may carry the characters raw or as \uXXXX
        body = urlencode({"payload": json.dumps(payload, ensure_ascii=escaped)}).encode()
        print(f"largest edit submission (ensure_ascii={escaped}): {len(body)} bytes")  # shown with -s
        assert len(body) < MAX_BODY_BYTES, len(body)
