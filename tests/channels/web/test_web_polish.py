"""Inbox polish over a real socket: field errors beside the field in plain words, one result line per execution."""

from __future__ import annotations

import re

from bot.commands import no_model_reply
from bot.config import load_settings
from bot.wiring import build_registry
from tests.channels.web.conftest import PRODUCTION_DEPLOY, Client, Inbox, text_of

BAD_VERSION = {"arg.service": "api", "arg.version": "1.2.3 hotfix!", "arg.environment": "production"}


async def test_an_invalid_edit_comes_back_with_the_error_beside_the_field(inbox: Inbox, local: Client) -> None:
    """Without the script: 422, the Edit form open, the typed value kept, the problem in words next to it."""
    thread_id = await local.start(PRODUCTION_DEPLOY)
    await inbox.wait_status(thread_id, "waiting_for_approval")
    response = await local.decide(thread_id, "edit", BAD_VERSION)
    assert response.status_code == 422
    html = response.text
    assert '<details class="edit" open>' in html
    assert ('<input type="text" name="arg.version" value="1.2.3 hotfix!" required aria-invalid="true" '
            'aria-describedby="err-version" autofocus>') in html
    note = re.search(r'<small class="field-error" id="err-version" role="alert" >([^<]*)</small>', html)
    assert note, html
    assert text_of(note.group(1)) == ("'1.2.3 hotfix!' is not allowed: use only letters, digits and . _ + -, "
                                      "starting with a letter or digit, at most 64 characters")
    assert re.search(r'id="err-service" role="alert" hidden></small>', html)  # only the bad field is marked
    assert "^[" not in html and "pattern" not in text_of(html)
    assert (await inbox.thread(thread_id)).status == "waiting_for_approval"


async def test_the_script_gets_each_fields_problem(inbox: Inbox, local: Client) -> None:
    """With the script: the JSON answer names each bad field with its plain-words problem."""
    thread_id = await local.start(PRODUCTION_DEPLOY)
    await inbox.wait_status(thread_id, "waiting_for_approval")
    bad = {**BAD_VERSION, "arg.environment": "prod"}
    response = await local.decide(thread_id, "edit", bad, fetch=True)
    assert response.status_code == 422
    body = response.json()
    assert set(body["fields"]) == {"version", "environment"}
    assert body["fields"]["environment"] == "input should be 'staging' or 'production'"
    assert body["fields"]["version"].startswith("'1.2.3 hotfix!' is not allowed: use only letters")


async def test_the_edit_form_says_what_each_field_accepts(inbox: Inbox, local: Client) -> None:
    """Text inputs carry their description and the allowed characters as help, never the raw pattern."""
    thread_id = await local.start(PRODUCTION_DEPLOY)
    await inbox.wait_status(thread_id, "waiting_for_approval")
    text = text_of((await local.get(f"/t/{thread_id}")).text)
    assert ("Exact version or git sha the person gave, e.g. 1.4.2. Never 'latest'; only letters, digits and . _ + -"
            in text)


async def test_an_executed_command_shows_its_result_once(inbox: Inbox, local: Client) -> None:
    """The command's reply repeats the result; the timeline shows it once (the reply is still in the thread)."""
    thread_id = await local.start(PRODUCTION_DEPLOY)
    await inbox.wait_status(thread_id, "waiting_for_approval")
    await local.decide(thread_id, "approve")
    thread = await inbox.wait_status(thread_id, "done")
    assert [e.type for e in thread.events][-2:] == ["action_result", "done"]
    text = text_of((await local.get(f"/t/{thread_id}")).text)
    assert text.count("recorded deploy of api 1.2.3 to production") == 1
    assert "deploy succeeded" in text


async def test_a_different_reply_after_a_result_is_still_shown(inbox: Inbox, local: Client) -> None:
    """Only an exact repeat is left out: a rejected command's reply (no result) is shown."""
    thread_id = await local.start(PRODUCTION_DEPLOY)
    await inbox.wait_status(thread_id, "waiting_for_approval")
    await local.decide(thread_id, "reject", {"comment": "not today"})
    await inbox.wait_status(thread_id, "done")
    text = text_of((await local.get(f"/t/{thread_id}")).text)
    assert "deploy was rejected by local: not today" in text


def test_the_no_model_hint_suggests_a_port_opsgate_does_not_use() -> None:
    """The hint names model server URLs that do not clash with opsgate's own port 8080."""
    reply = no_model_reply(build_registry(load_settings({})))
    urls = re.findall(r"http://127\.0\.0\.1:(\d+)/v1", reply)
    assert urls and "8080" not in urls
