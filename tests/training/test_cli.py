"""Tests of finefcace/training/cli.py and ``python -m finefcace``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from finefcace.training.cli import main
from tests.training_fixtures import one_thread  # noqa: F401  (autouse: one intra-op thread)

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny baseline trained through the CLI from the quick config, with --set changes."""
    tmp = tmp_path_factory.mktemp("cli")
    config = tmp / "run.yaml"
    values = yaml.safe_load((PROJECT / "configs" / "quick_synthetic_cpu.yaml").read_text())
    values.update(root=str(tmp / "data"), run_dir=str(tmp / "run"))
    config.write_text(yaml.safe_dump(values))
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    status = main(["train", "--config", str(config), "--quiet",
                   "--set", "method=baseline", "--set", "backbone=resnet18", "--set", "epochs=1",
                   "--set", "batch_size=4", "--set", "synthetic={n_train: 8, n_val: 4, n_test: 6, size: 64}"])
    torch.set_num_threads(previous)
    return status, config, tmp


def test_train_writes_the_run_and_prints_its_summary(trained, capsys):
    status, config, tmp = trained
    assert status == 0
    run_dir = tmp / "run"
    saved = json.loads((run_dir / "config.json").read_text())["config"]
    assert saved["method"] == "baseline" and saved["epochs"] == 1 and saved["batch_size"] == 4
    assert saved["synthetic"] == {"n_train": 8, "n_val": 4, "n_test": 6, "size": 64}
    assert len(pd.read_csv(run_dir / "predictions_test.csv")) == 6


def test_train_or_load_flag_does_not_retrain(trained, capsys):
    status, config, tmp = trained
    stamp = (tmp / "run" / "best.pt").stat().st_mtime_ns
    assert main(["train", "-c", str(config), "-q", "--load-if-done", "-s", "method=baseline", "-s", "backbone=resnet18",
                 "-s", "epochs=1", "-s", "batch_size=4",
                 "-s", "synthetic={n_train: 8, n_val: 4, n_test: 6, size: 64}"]) == 0
    assert (tmp / "run" / "best.pt").stat().st_mtime_ns == stamp
    assert json.loads(capsys.readouterr().out)["finished"] is True


def test_evaluate_and_predict(trained, capsys):
    status, config, tmp = trained
    out = tmp / "again.csv"
    assert main(["evaluate", "--run-dir", str(tmp / "run"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "accuracy" in printed and "by tone" in printed and str(out) in printed
    again = pd.read_csv(out)
    original = pd.read_csv(tmp / "run" / "predictions_test.csv")
    pd.testing.assert_frame_equal(again, original)
    # another table with the same target (a cross-dataset test): here the validation split
    predicted = tmp / "val.csv"
    assert main(["predict", "--run-dir", str(tmp / "run"), "--table", str(tmp / "data" / "labels.csv"),
                 "--split", "val", "--out", str(predicted)]) == 0
    assert len(pd.read_csv(predicted)) == 4


def test_predict_on_photos_with_bad_files_exits_2_naming_each_one(trained, tmp_path, capsys):
    """Real bad inputs (built from real photos when ../shared is present) met by predict: one message
    naming every unusable file and the fix, exit 2, no traceback, nothing written."""
    from tests.sources.bad_images import BAD_FILES, UNUSABLE, write_bad_files

    status, config, tmp = trained
    good, _ = write_bad_files(tmp_path / "photos")
    table = pd.DataFrame({"path": good + sorted(BAD_FILES), "split": "test", "gender": "Male"})
    table.to_csv(tmp_path / "photos.csv", index=False)
    out = tmp_path / "predicted.csv"
    assert main(["predict", "--run-dir", str(tmp / "run"), "--table", str(tmp_path / "photos.csv"),
                 "--root", str(tmp_path / "photos"), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "Traceback" not in error and "--drop-bad" in error
    assert all(name in error for name in UNUSABLE) and not out.exists()
    usable = table[~table["path"].isin(UNUSABLE)]
    usable.to_csv(tmp_path / "usable.csv", index=False)
    assert main(["predict", "--run-dir", str(tmp / "run"), "--table", str(tmp_path / "usable.csv"),
                 "--root", str(tmp_path / "photos"), "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == len(usable)  # the CMYK, rotated and misnamed photos are read


def test_bad_configuration_exits_2_naming_the_key(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("epoch: 3\nsynthetic: {n_train: 8, n_val: 4, n_test: 4}\n")
    assert main(["train", "--config", str(config)]) == 2
    assert "did you mean 'epochs'" in capsys.readouterr().err
    config.write_text("epochs: '3'\n")
    assert main(["train", "--config", str(config)]) == 2
    assert "'epochs' must be int" in capsys.readouterr().err
    assert main(["evaluate", "--run-dir", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_method_flag_trains_a_mitigation_method_and_its_options_are_set_keys(trained, capsys):
    status, config, tmp = trained
    run_dir = tmp / "dro"
    assert main(["train", "-c", str(config), "-q", "--method", "group_dro", "-s", f"run_dir={run_dir}",
                 "-s", "method_options.step_size=0.1", "-s", "backbone=resnet18", "-s", "epochs=1",
                 "-s", "batch_size=4", "-s", "synthetic={n_train: 8, n_val: 4, n_test: 6, size: 64}"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["method"] == "group_dro" and printed["uses_protected_labels"] is True
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["config"]["method_options"] == {"step_size": 0.1}
    assert saved["resolved"]["method_options"] == {"step_size": 0.1, "sampling": "balanced"}
    with pytest.raises(SystemExit) as exited:  # argparse names the choices
        main(["train", "-c", str(config), "--method", "dro"])
    assert exited.value.code == 2 and "invalid choice: 'dro'" in capsys.readouterr().err


def test_a_method_needing_protected_labels_on_a_table_without_them_exits_2(tmp_path, capsys):
    from PIL import Image

    (tmp_path / "img").mkdir()
    rows = [(f"img/{i}.png", "val" if i >= 4 else "train", "Male" if i % 2 else "Female") for i in range(6)]
    for path, *_ in rows:
        Image.new("RGB", (64, 64), (120, 90, 60)).save(tmp_path / path)
    pd.DataFrame(rows, columns=["path", "split", "gender"]).to_csv(tmp_path / "table.csv", index=False)
    assert main(["train", "-q", "-c", str(PROJECT / "configs" / "quick_synthetic_cpu.yaml"), "--method", "adversarial",
                 "-s", f"table={tmp_path / 'table.csv'}", "-s", "synthetic=null", "-s", "root=null",
                 "-s", f"run_dir={tmp_path / 'run'}"]) == 2
    error = capsys.readouterr().err
    assert "method 'adversarial' trains with a protected label" in error and "'race' or 'tone'" in error
    assert not (tmp_path / "run").exists()


def test_a_notebook_profile_gives_its_training_keys_only(tmp_path, capsys):
    profile = tmp_path / "profile.yaml"
    profile.write_text("dataset: synthetic\nn_bootstrap: 100\nepochs: 3\nrun_dir: runs/x\n")
    from finefcace.training.cli import _config, build_parser

    args = build_parser().parse_args(["train", "--profile", str(profile), "--set", "seed=4"])
    config = _config(args)
    assert config.epochs == 3 and config.seed == 4 and config.run_dir == "runs/x"
    # the same file as a training config is refused: n_bootstrap is no training key
    assert main(["train", "--config", str(profile)]) == 2
    assert "unknown config key 'dataset'" in capsys.readouterr().err


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "finefcace", "--help"], capture_output=True, text=True,
                            cwd=PROJECT, timeout=120)
    assert result.returncode == 0
    assert "train" in result.stdout and "evaluate" in result.stdout and "predict" in result.stdout
