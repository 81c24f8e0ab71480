"""One run, one number: does a committed study reproduce with the code that builds the book?

A committed study (``experiments/results/*.json``, :mod:`finefcace.training.study`) holds, among
its runs, the run of an arm and seed that a chapter also trains live — chapter 4's FineFACE and
baseline are seed 0 of the gender study that chapter 5 reports, chapter 7's live method is seed 0
of that arm of the mitigation study. The same configuration, seed, device and thread count give
identical test predictions (``tests/training/test_determinism.py``), hence identical metrics. So
the build compares the two runs' test metrics, and the page says which of three things holds:

* **identical** — the study's run *is* this build's run: the study reproduces with this code;
* **not reproduced** — they differ on the same kind of machine with the same number of threads:
  the study was made by other code than this build's (its ``code_version`` names which), and its
  numbers are marked as not this build's until it is regenerated (the command is given);
* **other hardware** — the study ran on another device or thread count: floating-point sums
  then run in another order and the tiny differences grow over training, so the two runs can end
  as different models; the sentence shows by how much they differ, without calling the study stale.

This is the build's staleness check: rather than guessing from commit dates which code change
affects which result, it retrains one run and compares — a change that alters no number (a
docstring, a plot) passes, and one that alters training or evaluation is caught.
Book: chapters 5 and 7.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["IDENTICAL", "LEDGER_VARIABLE", "NOT_REPRODUCED", "OTHER_HARDWARE", "Reproduction", "check_live_run",
           "check_runs", "compare_metrics", "live_metrics", "overall_verdict", "record", "reproduction_in_words"]

IDENTICAL, NOT_REPRODUCED, OTHER_HARDWARE = "identical", "not reproduced", "other hardware"
#: When the environment names a file here (the course command does), every check is appended to
#: it as a JSON line, and the book's status page lists which committed studies this build reproduced.
LEDGER_VARIABLE = "FINEFCACE_REPRODUCTION_LEDGER"
#: Two stored metrics count as the same number when they differ by less than this (the JSON
#: keeps every digit of a float; the slack only absorbs a CSV round trip of the predictions).
TOLERANCE = 1e-9


@dataclasses.dataclass(frozen=True)
class Reproduction:
    """A live run beside the committed study's run of the same arm and seed."""

    arm: str
    seed: int
    verdict: str  #: IDENTICAL, NOT_REPRODUCED or OTHER_HARDWARE
    table: "pd.DataFrame"  #: metric x ("trained here", "study, seed s"), test split, all images
    largest_difference: float  #: the largest absolute difference of a metric (its own unit)
    largest_metric: str  #: which metric that is
    study_hardware: str
    here_hardware: str
    study_code: str


def compare_metrics(here: Mapping[str, float], study: Mapping[str, float]) -> tuple[float, str]:
    """The largest absolute difference between the metrics both runs have (0.0 when identical),
    and the metric it is in."""
    here, study = dict(here), dict(study)
    shared = [m for m in here if m in study]
    if not shared:
        raise ValueError(f"the two runs share no metric to compare (here: {sorted(here)}, study: {sorted(study)})")
    return max((abs(float(here[m]) - float(study[m])), m) for m in shared)


def _test_metrics(results: Any, arm: str, seed: int) -> "pd.Series":
    reports = results.reports
    rows = reports[(reports["test_set"] == "test") & (reports["group"] == "all") & (reports["arm"] == arm)
                   & (reports["seed"] == seed)]
    if rows.empty:
        raise ValueError(f"the committed study {results.name!r} has no test report for arm {arm!r}, seed {seed} "
                         f"(arms: {sorted(set(reports['arm']))}, seeds: {sorted(set(reports['seed']))})")
    return rows.set_index("metric")["value"]


def check_live_run(live_metrics: Mapping[str, float], results: Any, arm: str, seed: int,
                   here_hardware: str | None = None) -> Reproduction:
    """Compare a live run's test metrics (``metric -> value``, all images, e.g. from
    :func:`finefcace.metrics.task_report` with ``n_bootstrap=0``) with the study's run of ``arm``
    and ``seed``. ``here_hardware`` defaults to this process's
    (:func:`finefcace.training.study.machine_description`), the machine that trains and evaluates the build."""
    import pandas as pd

    from finefcace.training.study import hardware_in_words, machine_description

    study = _test_metrics(results, arm, seed)
    here = pd.Series({m: float(v) for m, v in live_metrics.items()})
    shared = [m for m in here.index if m in study.index]
    table = pd.DataFrame({"trained here": here[shared], f"study, seed {seed}": study[shared].astype(float)})
    largest, metric = compare_metrics(here[shared], study[shared])
    here_hardware = hardware_in_words(here_hardware if here_hardware is not None else machine_description())
    study_hardware = hardware_in_words(str(results.meta.get("hardware", "not recorded")))
    if largest <= TOLERANCE:
        verdict = IDENTICAL
    elif study_hardware == here_hardware:
        verdict = NOT_REPRODUCED
    else:
        verdict = OTHER_HARDWARE
    return Reproduction(arm=arm, seed=seed, verdict=verdict, table=table, largest_difference=largest,
                        largest_metric=metric,
                        study_hardware=study_hardware, here_hardware=here_hardware,
                        study_code=str(results.meta.get("code_version", "not recorded (made before studies recorded it)")))


def live_metrics(result: Any) -> "pd.Series":
    """A trained run's test metrics over all images (``metric -> value``), as a study reports them."""
    from finefcace import metrics

    if result.predictions is None:
        raise ValueError(f"run {result.run_dir} has no test predictions to compare (train it with save_predictions)")
    report = metrics.task_report(result.predictions, result.config.target, n_bootstrap=0)
    return report[report["group"] == "all"].set_index("metric")["value"]


def check_runs(results: Any, live: Mapping[str, Any]) -> list[Reproduction]:
    """:func:`check_live_run` for each ``arm -> trained run`` of ``live`` (its seed is the run's)."""
    return [check_live_run(live_metrics(run), results, arm, run.config.seed) for arm, run in live.items()]


def overall_verdict(verdicts: list[str]) -> str:
    """One verdict for a study from its runs' verdicts: any run not reproduced makes the study not
    reproduced; otherwise any run on other hardware makes it so; else identical."""
    for verdict in (NOT_REPRODUCED, OTHER_HARDWARE):
        if verdict in verdicts:
            return verdict
    return IDENTICAL


def record(checks: list[Reproduction], study: str) -> None:
    """Append ``study``'s checks to the ledger the environment names (:data:`LEDGER_VARIABLE`), if any."""
    import json
    import os

    ledger = os.environ.get(LEDGER_VARIABLE)
    if not ledger:
        return
    entry = {"study": study, "verdict": overall_verdict([c.verdict for c in checks]),
             "runs": [f"{c.arm} (seed {c.seed})" for c in checks],
             "largest_difference": max(c.largest_difference for c in checks), "code_version": checks[0].study_code}
    with open(ledger, "a") as handle:
        handle.write(json.dumps(entry) + "\n")


def short_commit(version: str) -> str | None:
    """A recorded code version (``<40-hex commit>[+<local changes>]``) shortened to 7 hex digits,
    the suffix kept; None when ``version`` is not a commit (a study made outside git)."""
    commit, _, rest = str(version).partition("+")
    if len(commit) == 40 and all(c in "0123456789abcdef" for c in commit):
        return commit[:7] + ("+" + rest if rest else "")
    return None


def _short(version: str) -> str:
    return short_commit(version) or version


def _difference(check: Reproduction) -> str:
    """The largest difference in words, in its metric's unit (accuracies are in percent: points)."""
    from finefcace.course.findings import METRIC_WORDS

    words, unit, decimals = METRIC_WORDS.get(check.largest_metric, (check.largest_metric, "", 3))
    size = f"{check.largest_difference:.{decimals}f}"
    if float(size) == 0:  # smaller than the decimals shown: say so instead of "0.0"
        size = f"{check.largest_difference:.1e}"
    return f"{size}{' ' + unit if unit else ''} ({words})"


def reproduction_in_words(checks: list[Reproduction], *, study: str, regenerate: str,
                          names: Mapping[str, str] | None = None) -> str:
    """One Markdown paragraph on whether the committed ``study`` reproduces, from ``checks``
    (one per live run); ``regenerate`` is the command that remakes the study. A study that is
    not reproduced on the same hardware opens with a warning a reader cannot miss."""
    if not checks:
        raise ValueError(f"no live run to compare with the committed study {study!r}")
    record(checks, study)
    names = dict(names or {})
    runs = ", ".join(f"{names.get(c.arm, c.arm)} (seed {c.seed})" for c in checks)
    verdicts = {c.verdict for c in checks}
    code = _short(checks[0].study_code)
    if verdicts == {IDENTICAL}:
        return (f"**Reproduced.** This build's {runs} and the committed study's runs of the same arm and seed give "
                f"identical test metrics: the study's numbers for {'them' if len(checks) > 1 else 'it'} "
                f"are this build's (study made by code {code}, on {checks[0].study_hardware}).")
    stale = [c for c in checks if c.verdict == NOT_REPRODUCED]
    if stale:
        worst = max(stale, key=lambda c: c.largest_difference)
        which = ", ".join(f"{names.get(c.arm, c.arm)} (seed {c.seed})" for c in stale)
        return (f"**⚠ Not reproduced by this build.** On the same kind of machine and thread count "
                f"({stale[0].here_hardware}), this build's {which} differ from the committed study's runs of the same "
                f"arm and seed by up to {_difference(worst)}: the study was made by other code ({code}) than this build's. "
                f"Read its numbers as an earlier version's until it is regenerated: `{regenerate}`.")
    other = [c for c in checks if c.verdict == OTHER_HARDWARE]
    worst = max(other, key=lambda c: c.largest_difference)
    return (f"The committed study ran on {other[0].study_hardware}, this build on {other[0].here_hardware}. With "
            f"another device or thread count the floating-point sums run in another order; the tiny differences "
            f"grow over training, so the same arm and seed can end as a different model. Here this build's {runs} "
            f"differ from the study's by up to {_difference(worst)} — as much as one seed differs from another, so "
            f"read the study's spread over seeds, not one run. To compare them digit by digit, build and regenerate "
            f"on one machine: `{regenerate}`.")
