"""One run, one number, across the committed studies (experiments/results/*.json).

Two studies may train the same run — the gender study's baseline is also the mitigation study's
baseline arm, on the same profile. Where they do (the same configuration identity, seed, device
and thread count), the runs are one run: their stored test metrics must be identical, or the
book would show two numbers for it on two pages. Every study also names the code and machine
that made it (its ``code_version`` and ``hardware``).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

from finefcace.training.config import TrainConfig
from finefcace.training.study import StudyResults, hardware_in_words

RESULTS = Path(__file__).resolve().parents[1] / "experiments" / "results"
STUDIES = sorted(RESULTS.glob("*.json"))


def run_key(results: StudyResults, arm: str, seed: int) -> str:
    """What makes two studies' runs the same run: configuration identity, seed, data and machine.

    The label table's path is left out of the identity and the data's description put in: each
    real-photograph study writes its own copy of the same table (``runs/<study>/tables/``)."""
    changes = next(a["changes"] for a in results.meta["arms"] if a["name"] == arm)
    config = TrainConfig.from_dict(results.meta["base_config"]).replace(**changes, seed=seed)
    identity = {key: value for key, value in config.identity().items() if key != "table"}
    data = re.sub(r"runs/[^/ ]+/tables/", "", results.meta["data"])
    return json.dumps([identity, data, hardware_in_words(results.meta["hardware"])],
                      sort_keys=True, default=str)


def own_test_metrics(results: StudyResults, arm: str, seed: int) -> dict[str, float]:
    rows = results.reports[(results.reports["arm"] == arm) & (results.reports["seed"] == seed)
                           & (results.reports["test_set"] == "test")]
    return {(row.group, row.metric): float(row.value) for row in rows.itertuples()}


def test_there_are_committed_studies():
    assert len(STUDIES) >= 5, STUDIES


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_every_study_names_its_machine_and_date(path):
    meta = json.loads(path.read_text())["meta"]
    assert meta.get("hardware") and meta.get("date"), f"{path.name}: no hardware/date in its meta"


def test_a_run_in_two_studies_has_one_set_of_numbers():
    seen: dict[str, list[tuple[str, str, int, dict]]] = defaultdict(list)
    for path in STUDIES:
        results = StudyResults.from_json(path)
        for arm in results.arms:
            for seed in results.meta["seeds"]:
                metrics = own_test_metrics(results, arm, seed)
                if metrics:
                    seen[run_key(results, arm, seed)].append((path.stem, arm, seed, metrics))
    shared = {key: runs for key, runs in seen.items() if len({r[0] for r in runs}) > 1}
    problems = []
    for runs in shared.values():
        first_study, first_arm, seed, first = runs[0]
        for study, arm, _, metrics in runs[1:]:
            differing = sorted(f"{g}/{m}: {first[(g, m)]:.4f} vs {metrics[(g, m)]:.4f}"
                               for (g, m) in set(first) & set(metrics) if abs(first[(g, m)] - metrics[(g, m)]) > 1e-9)
            if differing:
                problems.append(f"{first_study}:{first_arm} and {study}:{arm}, seed {seed}: {differing[:4]}")
    assert not problems, "the same run has different numbers in two committed studies:\n" + "\n".join(problems)
    # Not vacuous: the pairs of studies that share runs today (same device and thread count). A study
    # regenerated on another machine or thread count leaves a pair; the book would then show two
    # numbers for one arm and seed, so that is a failure too.
    pairs = {tuple(sorted({r[0] for r in runs})) for runs in shared.values()}
    assert {("mitigation_methods", "quick_gender"), ("controls", "resolution")} <= pairs, pairs
    assert sum(len(runs) > 1 for runs in shared.values()) >= 10


def test_the_check_can_fail(tmp_path):
    """The consistency check above finds a run shared by two studies (so it compares something)."""
    keys = defaultdict(set)
    for path in STUDIES:
        results = StudyResults.from_json(path)
        for arm in results.arms:
            for seed in results.meta["seeds"]:
                keys[run_key(results, arm, seed)].add(path.stem)
    assert any(len(studies) > 1 for studies in keys.values()), "no run is shared by two committed studies"
