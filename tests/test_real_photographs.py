"""Real photographs end to end (../shared/realfaces; skipped, with the reason printed, where absent):
the UTKFace adapter -> a seeded split with no photo in two splits -> a few training batches of FineFACE
and the baseline -> evaluation with the fairness report -> a cross-dataset test on FairFace photographs,
with the leak check between training and test photos."""

from __future__ import annotations

import shutil
import warnings

import pandas as pd
import pytest

from tests.training_fixtures import one_thread  # noqa: F401  (autouse: one intra-op thread)


def _subset(table: pd.DataFrame, sizes: dict[str, int]) -> pd.DataFrame:
    parts = [table[table["split"] == split].sample(n, random_state=0) for split, n in sizes.items()]
    return pd.concat(parts).sort_index()


def test_real_photographs_train_and_evaluate_end_to_end(realfaces_dir, tmp_path):
    from finefcace import metrics
    from finefcace.sources.adapters import dataset_table
    from finefcace.sources.duplicates import HASH_COLUMN, CrossDatasetLeakWarning, straddling_groups
    from finefcace.sources.table import save_table
    from finefcace.training.evaluation import evaluate_run
    from finefcace.training.trainer import train

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the duplicate and skipped-name warnings have their own tests
        utkface = dataset_table("utkface", realfaces_dir / "utkface", splits="seeded", seed=0)
    assert straddling_groups(utkface).empty
    table = _subset(utkface, {"train": 96, "val": 32, "test": 80})
    save_table(table, tmp_path / "utkface.csv")
    base = {"table": str(tmp_path / "utkface.csv"), "root": str(realfaces_dir / "utkface"), "backbone": "resnet18",
            "input_size": 64, "batch_size": 16, "epochs": 1, "max_batches": 3, "device": "cpu", "progress": False,
            "overrides": {"descriptor_dim": 32}, "image_cache": str(tmp_path / "cache")}
    runs = {method: train({**base, "method": method, "run_dir": str(tmp_path / method)})
            for method in ("baseline", "finefcace")}
    for method, result in runs.items():
        predictions = result.predictions
        assert len(predictions) == 80 and set(predictions["split"]) == {"test"}
        report = metrics.gender_task_report(predictions, n_bootstrap=50, seed=0)
        groups = report[(report["metric"] == "accuracy") & (report["group"] != "all")]
        assert len(groups) == predictions.groupby(["race", "gender"]).ngroups  # UTKFace's race x gender groups
        overall = report[report["metric"] == "overall_accuracy"]["value"].iloc[0]
        assert 0 <= overall <= 100

    # cross-dataset: FairFace photographs, and three UTKFace training photos slipped in (a leak)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fairface = dataset_table("fairface", realfaces_dir / "fairface", splits="test")
    cross_root = tmp_path / "cross"
    sample = fairface.sample(20, random_state=0)
    for path in sample["path"]:
        (cross_root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(realfaces_dir / "fairface" / path, cross_root / path)
    leaked = table[table["split"] == "train"].head(3)
    for path in leaked["path"]:
        shutil.copy(realfaces_dir / "utkface" / path, cross_root / f"leak_{path.split('/')[-1]}")
    cross = pd.concat([sample[["path", "split", "gender", "race"]],
                       leaked.assign(path="leak_" + leaked["path"].str.split("/").str[-1], split="test")
                       [["path", "split", "gender", "race"]]], ignore_index=True)
    save_table(cross, tmp_path / "cross.csv")
    with pytest.warns(CrossDatasetLeakWarning, match=r"3 of 23 test images .* byte-identical"):
        predictions = evaluate_run(tmp_path / "finefcace", table=tmp_path / "cross.csv", root=cross_root)
    assert len(predictions) == 23
    shared = pd.DataFrame(predictions.attrs["training_overlap"])
    assert sorted(shared["test_path"]) == sorted(cross["path"].tail(3))
    assert HASH_COLUMN in utkface.columns
