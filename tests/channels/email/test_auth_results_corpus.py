"""The Authentication-Results corpus (auth_results_corpus.yaml): real servers' forms and forgeries, end to end
from raw message bytes through parse_mail to the verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from channels.email.auth_results import AuthResultsError, parse_authentication_results
from channels.email.authentication import check_authentication
from channels.email.inbound import parse_mail

CORPUS = Path(__file__).with_name("auth_results_corpus.yaml")


class Case(BaseModel):
    """One corpus entry (the file's header comment explains the fields)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    trusted: str
    sender: str = Field(alias="from")
    headers: list[str]
    expect: Literal["pass", "refuse"]
    reason: str
    unreadable: list[int] = []

    def raw(self) -> bytes:
        """The message as it would arrive: the headers as written (folded lines kept), From, a body."""
        lines = [f"Authentication-Results: {header}" for header in self.headers]
        lines += [f"From: Someone <{self.sender}>", "Message-ID: <corpus@example.com>", "", "APPROVE", ""]
        return "\n".join(lines).replace("\n", "\r\n").encode()


def _load() -> list[Case]:
    return [Case.model_validate(entry) for entry in yaml.safe_load(CORPUS.read_text())]


CASES = _load()


def test_corpus_is_well_formed() -> None:
    """Names are unique, folded lines start with white space, both outcomes are covered."""
    assert len({case.name for case in CASES}) == len(CASES)
    for case in CASES:
        for header in case.headers:
            assert all(line[:1] in (" ", "\t") for line in header.split("\n")[1:]), case.name
    assert {case.expect for case in CASES} == {"pass", "refuse"} and len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_corpus_verdict(case: Case) -> None:
    """Each message gets the expected verdict, for the expected reason."""
    mail = parse_mail(case.raw())
    assert len(mail.authentication_results) == len(case.headers)
    verdict = check_authentication(mail, case.trusted)
    assert (verdict.passed, case.reason in verdict.reason) == (case.expect == "pass", True), verdict.reason


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_corpus_headers_parse_unless_marked_unreadable(case: Case) -> None:
    """Every header in the forms servers really write parses; the deliberately broken ones raise."""
    for index, value in enumerate(parse_mail(case.raw()).authentication_results):
        if index in case.unreadable:
            with pytest.raises(AuthResultsError):
                parse_authentication_results(value)
        else:
            assert parse_authentication_results(value).results is not None
