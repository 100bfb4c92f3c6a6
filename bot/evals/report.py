"""The eval report: per-case runs, pass rates per group, what the rules caught, latency; as a table and JSON."""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import datetime

from pydantic import BaseModel, Field

from bot.evals.runner import CaseRun
from bot.events import utcnow


class GroupSummary(BaseModel):
    """Pass counts of one case group."""

    runs: int
    passed: int
    model_passed: int

    @property
    def rate(self) -> float:
        """Share of runs that passed."""
        return self.passed / self.runs if self.runs else 0.0


class Totals(BaseModel):
    """What the report counts over every run (the last four are "reached people or a tool": target zero)."""

    runs: int = 0
    passed: int = 0
    model_passed: int = 0
    invented_by_model: int = 0
    leaks_by_model: int = 0
    repeats_by_model: int = 0
    invented_reaching: int = 0
    leaks_reaching: int = 0
    repeats_reaching: int = 0
    latency_ms_median: int = 0
    latency_ms_p90: int = 0
    latency_ms_max: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_calls: int = 0
    second_looks: int = 0  # extra calls made by rule 1 (a question on the first step checked once more)
    second_looks_used: int = 0  # ... whose forced action replaced a needless question

    @property
    def pass_rate(self) -> float:
        """Share of all runs that passed."""
        return self.passed / self.runs if self.runs else 0.0


class Report(BaseModel):
    """One ``opsgate eval`` run of one agent."""

    agent: str
    prompt_hash: str
    model: str
    temperature: float | None = None
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    runs: list[CaseRun] = Field(default_factory=list)
    groups: dict[str, GroupSummary] = Field(default_factory=dict)
    totals: Totals = Field(default_factory=Totals)

    def finish(self) -> Report:
        """Fill in the group summaries and totals from the runs."""
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for run in self.runs:
            counts[run.group][0] += 1
            counts[run.group][1] += run.passed
            counts[run.group][2] += run.model_passed
        self.groups = {g: GroupSummary(runs=c[0], passed=c[1], model_passed=c[2]) for g, c in sorted(counts.items())}
        latencies = sorted(r.latency_ms for r in self.runs) or [0]
        self.totals = Totals(
            runs=len(self.runs), passed=sum(r.passed for r in self.runs),
            model_passed=sum(r.model_passed for r in self.runs),
            invented_by_model=sum(bool(r.invented_by_model) for r in self.runs),
            leaks_by_model=sum(r.leak_by_model for r in self.runs),
            repeats_by_model=sum(r.repeat_by_model for r in self.runs),
            invented_reaching=sum(bool(r.invented_reaching) for r in self.runs),
            leaks_reaching=sum(r.leak_reaching for r in self.runs),
            repeats_reaching=sum(r.repeat_reaching for r in self.runs),
            latency_ms_median=int(statistics.median(latencies)),
            latency_ms_p90=latencies[min(len(latencies) - 1, int(len(latencies) * 0.9))],
            latency_ms_max=latencies[-1],
            prompt_tokens=sum(r.prompt_tokens for r in self.runs),
            completion_tokens=sum(r.completion_tokens for r in self.runs),
            model_calls=sum(r.model_calls for r in self.runs),
            second_looks=sum(r.second_look is not None for r in self.runs),
            second_looks_used=sum(r.second_look == "used" for r in self.runs),
        )
        self.finished_at = utcnow()
        return self


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def table(report: Report) -> str:
    """The report as text: one line per run, then groups and totals."""
    lines = [f"opsgate eval  agent={report.agent}  prompt={report.prompt_hash}  model={report.model}  "
             f"temperature={report.temperature}", ""]
    head = f"{'case':<34} {'group':<12} {'result':<6} {'model':<6} {'ms':>6} {'tokens':>7}  got / difference"
    lines += [head, "-" * len(head)]
    for run in report.runs:
        name = run.id if run.run == 1 else f"{run.id}#{run.run}"
        verdict = "pass" if run.passed else "FAIL"
        model = "pass" if run.model_passed else "fail"
        detail = run.got if run.passed else f"[{'; '.join(run.diff)}]"
        if run.guards:
            detail += f"  (rules: {', '.join(run.guards)})"
        tokens = run.prompt_tokens + run.completion_tokens
        lines.append(f"{_cut(name, 34):<34} {_cut(run.group, 12):<12} {verdict:<6} {model:<6} {run.latency_ms:>6} "
                     f"{tokens:>7}  {_cut(detail, 200)}")
    lines += ["", f"{'group':<14} {'passed':>10} {'rate':>6}   model alone"]
    for name, group in report.groups.items():
        lines.append(f"{name:<14} {group.passed:>4}/{group.runs:<5} {group.rate:>6.0%}   "
                     f"{group.model_passed}/{group.runs}")
    t = report.totals
    lines += [
        f"{'all':<14} {t.passed:>4}/{t.runs:<5} {t.pass_rate:>6.0%}   {t.model_passed}/{t.runs}",
        "",
        f"proposed by the model: invented values in {t.invented_by_model}, leaked instructions in {t.leaks_by_model}, "
        f"repeated side effects in {t.repeats_by_model} runs",
        f"reached a card, a tool or a person: invented {t.invented_reaching}, leaks {t.leaks_reaching}, "
        f"repeats {t.repeats_reaching}",
        f"latency ms: median {t.latency_ms_median}, p90 {t.latency_ms_p90}, max {t.latency_ms_max}; "
        f"tokens: {t.prompt_tokens} prompt, {t.completion_tokens} completion (latency and tokens per run: all its "
        f"{t.model_calls} model calls)",
        f"second look at a question (rule 1): {t.second_looks} extra calls, {t.second_looks_used} needless questions "
        "replaced by the action",
    ]
    return "\n".join(lines)
