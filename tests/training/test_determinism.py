"""Same configuration, seed, device and thread count give the same run: identical history,
summary and test predictions through the path the book and the studies use (train, then
evaluate) — with the decoded-image cache cold or warm, and in a one-thread worker process as
``--jobs`` starts them (``experiments/real_photographs.py``). A study on runs that did not
reproduce would have to be redone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.training_fixtures import one_thread  # noqa: F401  (autouse: one intra-op thread)

SIZE = 64
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_faces(tmp_path_factory):
    from finefcace.sources.synthetic import generate_synthetic

    root = tmp_path_factory.mktemp("faces")
    generate_synthetic(root, n_train=24, n_val=8, n_test=8, size=SIZE, seed=0)
    return root


def _config(root: Path, run_dir: Path, cache: Path, **changes) -> dict:
    return {"table": str(root / "labels.csv"), "backbone": "resnet18", "input_size": SIZE, "batch_size": 8,
            "epochs": 2, "patience": 5, "overrides": {"descriptor_dim": 16}, "device": "cpu", "progress": False,
            "seed": 3, "run_dir": str(run_dir), "image_cache": str(cache), **changes}


def _outcome(run_dir: Path) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    history = pd.read_csv(run_dir / "history.csv").drop(columns=["epoch_seconds"], errors="ignore")
    history = history[[c for c in history.columns if "seconds" not in c]]
    summary = {k: v for k, v in json.loads((run_dir / "summary.json").read_text()).items()
               if "seconds" not in k and k not in ("run_dir", "finished_at", "started_at", "date")}
    predictions = pd.read_csv(run_dir / "predictions_test.csv")[["path", "y_pred", "prob_0", "prob_1"]]
    return history, summary, predictions


def _assert_same(first: Path, second: Path) -> None:
    (h1, s1, p1), (h2, s2, p2) = _outcome(first), _outcome(second)
    pd.testing.assert_frame_equal(h1, h2, check_exact=True)
    pd.testing.assert_frame_equal(p1, p2, check_exact=True)
    assert {k: v for k, v in s1.items() if not isinstance(v, str)} == {k: v for k, v in s2.items()
                                                                      if not isinstance(v, str)}


@pytest.mark.parametrize("regions", ["cam", "placebo"])
def test_same_seed_same_run_with_the_image_cache_cold_then_warm(tiny_faces, tmp_path, regions):
    from finefcace.training.trainer import train

    cache = tmp_path / "cache"
    assert not cache.exists()
    train(_config(tiny_faces, tmp_path / "cold", cache, regions=regions))
    assert any(cache.iterdir())  # the first run decoded the images and kept them
    train(_config(tiny_faces, tmp_path / "warm", cache, regions=regions))
    _assert_same(tmp_path / "cold", tmp_path / "warm")


def test_same_seed_same_run_in_a_one_thread_worker_process(tiny_faces, tmp_path):
    """A ``--jobs`` worker: a fresh process with OMP_NUM_THREADS=1 trains the run; this process
    (one intra-op thread, the fixture) trains it too; the two agree to the last digit."""
    from finefcace.training.trainer import train

    config = _config(tiny_faces, tmp_path / "worker", tmp_path / "cache")
    code = ("import json, sys; from finefcace.training.trainer import train; "
            "train(json.loads(sys.argv[1]))")
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", code, json.dumps(config)], check=True, cwd=ROOT, env=environment,
                   timeout=600)
    train({**config, "run_dir": str(tmp_path / "here")})
    _assert_same(tmp_path / "worker", tmp_path / "here")


def test_a_different_seed_gives_a_different_run(tiny_faces, tmp_path):
    """The comparison above can fail: another seed changes the history."""
    from finefcace.training.trainer import train

    train(_config(tiny_faces, tmp_path / "a", tmp_path / "cache"))
    train(_config(tiny_faces, tmp_path / "b", tmp_path / "cache", seed=4))
    with pytest.raises(AssertionError):
        _assert_same(tmp_path / "a", tmp_path / "b")
