"""Bad inputs and faults, one case each, through every entry point: what a hostile user tries.

Each :class:`Case` builds its inputs in a fresh folder (``setup``), runs one command there —
``python -m finefcace ...``, ``python -m data_prep ...``, a script of the checkout
(``experiments/*.py``, ``scripts/photo_subset.py``, ``scripts/gpu_check.py``) or a notebook cell
in an IPython shell — and states what must happen: the exit status, words of the message's first line,
the files that must keep their bytes (never overwritten) and the files that must not appear
(nothing written before validation passes). Every case also fails on a raw traceback.

Run in-process by ``tests/test_bad_inputs.py``; run as subprocesses against any checkout by
``scripts/bad_inputs_table.py``, which prints the before/after table. Most cases start from
one tiny trained run (:func:`build_shared`: a baseline ResNet-18 on 18 synthetic faces,
64 px, one epoch) whose paths are relative, so a copy of it is a self-consistent run.
Image decoding (EXIF orientation, decompression bombs, corrupt files met mid-training) is
tested with the dataset adapters' image reading, not here.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

#: The tiny run every case starts from (paths relative to the case folder).
BASE_CONFIG = {
    "method": "baseline", "backbone": "resnet18", "input_size": 64, "batch_size": 4, "epochs": 1,
    "device": "cpu", "workers": 0, "progress": False, "seed": 0, "root": "data", "run_dir": "run",
    "synthetic": {"n_train": 8, "n_val": 4, "n_test": 6, "size": 64, "seed": 0},
}
#: A short training for the cases that must get past validation: one batch, then stop.
ONE_BATCH = {"stop_after_batches": 1}
RUN_FILES = ("config.json", "best.pt", "last.pt", "summary.json", "history.json", "history.csv",
             "predictions_test.csv", "predictions_val.csv")
TRACEBACK = "Traceback (most recent call last)"
PROJECT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Case:
    """One bad input and what must happen (see the module docstring)."""

    id: str
    entry: str                       # "finefcace", "data_prep", "script" (path in the checkout first) or "notebook"
    what: str                        # the bad input or fault, in words
    command: tuple[str, ...] | str   # the command's arguments, or the notebook cell's code
    status: int                      # expected exit status (a notebook cell: 0 ran, 1 failed)
    message: str                     # words the message must hold (first line when status != 0)
    setup: Callable[[Path, Path], None] | None = None   # (case folder, shared folder)
    unchanged: tuple[str, ...] = ()  # files (relative to the case folder) whose bytes must not change
    absent: tuple[str, ...] = ()     # files that must not exist afterwards
    check: Callable[[Path], str | None] | None = None   # further check: a problem in words, or None
    needs_cpu_only: bool = False     # the expected outcome holds only where CUDA is absent


@dataclass
class Outcome:
    status: int
    stdout: str
    stderr: str
    problems: list[str] = field(default_factory=list)

    @property
    def traceback(self) -> bool:
        return TRACEBACK in self.stdout or TRACEBACK in self.stderr

    def first_line(self, fragment: str = "") -> str:
        """The line the table shows: a traceback's last line, the first line of a refusal, or
        (exit 0) the line holding ``fragment``."""
        text = ANSI.sub("", self.stderr + "\n" + self.stdout)
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if self.traceback:
            exception = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Warning|Interrupt)\b", line)]
            return "traceback: " + (exception[-1] if exception else lines[-1])
        if fragment:
            holding = [line for line in lines if fragment in line]
            if holding:
                return holding[0]
        if self.status != 0:
            errors = [line for line in ANSI.sub("", self.stderr + "\n" + self.stdout).splitlines() if line.strip()]
            return errors[0].strip() if errors else ""
        return lines[0] if lines else ""


# ------------------------------------------------------------------ the shared run
def build_shared(folder: Path, python_path: str | None = None) -> Path:
    """Train the tiny run the cases copy (``folder/data``, ``folder/run``), with the checkout
    on ``python_path`` (default: this one, in-process). Returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "run" / "summary.json").is_file():
        return folder
    (folder / "c.yaml").write_text(yaml.safe_dump(BASE_CONFIG))
    outcome = run_command("finefcace", ("train", "-c", "c.yaml", "-q"), folder, python_path)
    if outcome.status != 0:
        raise RuntimeError(f"the shared run did not train:\n{outcome.stdout}\n{outcome.stderr}")
    return folder


def copy_data(folder: Path, shared: Path) -> None:
    shutil.copytree(shared / "data", folder / "data")


def copy_run(folder: Path, shared: Path, files: tuple[str, ...] = RUN_FILES) -> None:
    copy_data(folder, shared)
    (folder / "run").mkdir()
    for name in files:
        shutil.copy2(shared / "run" / name, folder / "run" / name)


def write_config(folder: Path, name: str = "c.yaml", text: str | None = None, **changes) -> None:
    values = {**BASE_CONFIG, **changes}
    (folder / name).write_text(text if text is not None else yaml.safe_dump(values, sort_keys=False))


def table(folder: Path) -> "pd.DataFrame":  # noqa: F821 - pandas imported where used
    import pandas as pd

    return pd.read_csv(folder / "data" / "labels.csv")


def save_table(frame, folder: Path, name: str = "data/labels.csv") -> None:
    frame.to_csv(folder / name, index=False)


def _touch_weights(path: Path, value: float) -> None:
    """Every floating-point tensor of a checkpoint's model set to ``value`` (NaN, inf)."""
    import torch

    state = torch.load(path, weights_only=True)
    for tensor in state["model"].values():
        if tensor.is_floating_point():
            tensor.fill_(value)
    torch.save(state, path)


# ------------------------------------------------------------------ setups
def data_only(folder, shared):
    copy_data(folder, shared)


def config_with(**changes):
    def setup(folder, shared):
        copy_data(folder, shared)
        write_config(folder, **changes)
    return setup


def table_edit(edit, **changes):
    """The shared data with ``edit(table)`` applied to its labels.csv, and a config using it."""
    def setup(folder, shared):
        copy_data(folder, shared)
        frame = table(folder)
        edit(frame)
        save_table(frame, folder, "data/edited.csv")
        write_config(folder, table="data/edited.csv", **changes)
    return setup


def run_with(edit=None, files=RUN_FILES, **changes):
    """A copy of the shared run (``edit(folder)`` applied) and a config naming it."""
    def setup(folder, shared):
        copy_run(folder, shared, files)
        write_config(folder, **changes)
        if edit is not None:
            edit(folder)
    return setup


def nan_model(folder):
    _touch_weights(folder / "run" / "best.pt", float("nan"))


def inf_model(folder):
    _touch_weights(folder / "run" / "best.pt", float("inf"))


def truncate(name):
    def edit(folder):
        path = folder / "run" / name
        path.write_bytes(path.read_bytes()[:1000])
    return edit


def foreign_last_checkpoint(folder):
    """last.pt as another configuration saved it (another learning rate)."""
    import torch

    path = folder / "run" / "last.pt"
    state = torch.load(path, weights_only=True)
    state["config"]["overrides"] = {"head_lr": 0.5}
    torch.save(state, path)
    (folder / "run" / "summary.json").unlink()


def orphan_temporary(folder):
    (folder / "run" / ".last.pt.k2j4x9.tmp").write_bytes(b"\0" * 1_000_000)


def unlabelled_table(folder, shared):
    copy_run(folder, shared)
    frame = table(folder)
    save_table(frame.drop(columns=["gender"]), folder, "data/unlabelled.csv")


def image_folder(folder, shared):
    copy_run(folder, shared)
    (folder / "photos").mkdir()
    for path in sorted((folder / "data" / "test").glob("*.png"))[:3]:
        shutil.copy2(path, folder / "photos" / path.name)


def table_for_predict(edit):
    def setup(folder, shared):
        copy_run(folder, shared)
        frame = table(folder)
        edit(frame)
        save_table(frame, folder, "data/other.csv")
    return setup


def existing_file(name, text="keep me\n"):
    def setup(folder, shared):
        copy_run(folder, shared)
        (folder / name).write_text(text)
    return setup


def synthetic_folder(folder, shared):
    copy_data(folder, shared)


def celeba_download(image_name="000001.jpg"):
    """A two-image CelebA download whose first image is listed as ``image_name`` (the image
    is written where that name points, unless it is absolute)."""
    def setup(folder, shared):
        from tests.sources.layouts import write_jpg
        from tests.sources.test_celeba import CELEBA_NAMES

        root = folder / "celeba"
        (root / "img_align_celeba").mkdir(parents=True)
        names = [image_name, "000002.jpg"]
        lines = [str(len(names)), " ".join(CELEBA_NAMES)]
        lines += [f"{name} " + " ".join(["1"] * len(CELEBA_NAMES)) for name in names]
        (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
        (root / "list_eval_partition.txt").write_text(f"{names[0]} 0\n{names[1]} 2\n")
        write_jpg(root / "img_align_celeba" / "000002.jpg", (40, 48))
        if not image_name.startswith("/"):
            write_jpg((root / "img_align_celeba" / image_name).resolve(), (40, 48))
    return setup


def fairface_download(folder, shared):
    from tests.sources.layouts import fairface_layout, fairface_rows

    fairface_layout(folder / "fairface", fairface_rows("train", 14), fairface_rows("val", 4))


def with_table_already_written(folder, shared):
    fairface_download(folder, shared)
    (folder / "tables").mkdir()
    (folder / "tables" / "fairface.csv").write_text("path,split\nmine.jpg,train\n")


def first_of_split(column, split, value):
    """An edit giving the first row of ``split`` the value ``value`` in ``column``."""
    def edit(frame):
        frame[column] = frame[column].astype(object)
        frame.loc[frame.index[frame["split"] == split][0], column] = value
    return edit


def row_path(position, value):
    """An edit giving row ``position`` (0-based) the path ``value``."""
    def edit(frame):
        frame.loc[frame.index[position], "path"] = value
    return edit


def images_but_no_table(folder, shared):
    """A folder of other images (no labels.csv) where the config generates the synthetic faces."""
    copy_data(folder, shared)
    (folder / "data" / "labels.csv").rename(folder / "data" / "mine.csv")
    shutil.copy2(folder / "data" / "train" / "000001.png", folder / "data" / "train" / "000000.png")
    write_config(folder)


def a_file(name):
    def setup(folder, shared):
        copy_data(folder, shared)
        write_config(folder)
        (folder / name).write_text("not a folder\n")
    return setup


def utkface_photos(n: int = 40, extra=None):
    """A UTKFace download of ``n`` small photographs under ``utk/UTKFace`` (every race x gender
    group), with ``extra(images folder)`` applied; and a file ``afile`` (an output that is a file)."""
    def setup(folder, shared):
        from tests.sources.layouts import write_jpg

        images = folder / "utk" / "UTKFace"
        for i in range(n):
            write_jpg(images / f"{20 + i % 50}_{i % 2}_{(i // 2) % 5}_2017010{i:08d}.jpg.chip.jpg", (24, 24))
        if extra is not None:
            extra(images)
        (folder / "afile").write_text("keep me\n")
    return setup


def unreadable_photo_names(images):
    """A photograph name that links to nothing, and a file whose name carries no labels."""
    (images / "30_1_2_20170109999999.jpg.chip.jpg").symlink_to(images / "gone.jpg")
    (images / "notes.txt").write_text("not a photograph\n")


def image_folder_with(*, dangling: bool = True, images: int = 3, empty_jpeg: bool = False):
    """A trained run and a folder ``photos`` of ``images`` test images, plus a dangling link and
    a link loop (``dangling``) or an empty JPEG (``empty_jpeg``)."""
    def setup(folder, shared):
        copy_run(folder, shared)
        photos = folder / "photos"
        photos.mkdir()
        for path in sorted((folder / "data" / "test").glob("*.png"))[:images]:
            shutil.copy2(path, photos / path.name)
        if dangling:
            (photos / "moved.png").symlink_to(photos / "elsewhere.png")
            (photos / "loop.png").symlink_to(photos / "loop.png")
        if empty_jpeg:
            (photos / "empty.jpg").write_bytes(b"")
    return setup


def fairface_with(edit):
    """A FairFace download (14 train, 4 val images) with ``edit(root)`` applied."""
    def setup(folder, shared):
        fairface_download(folder, shared)
        edit(folder / "fairface")
    return setup


def stale_lock(folder):
    (folder / "run" / ".lock").write_text("999999\n")  # a process that died long ago


# ------------------------------------------------------------------ checks
def resolved_head_lr(value):
    def check(folder):
        saved = json.loads((folder / "run" / "config.json").read_text())["resolved"]["head_lr"]
        return None if saved == value else f"head_lr in force is {saved!r}, not {value!r}"
    return check


def predictions_without_accuracy(rows):
    def check(folder):
        import pandas as pd

        frame = pd.read_csv(folder / "p.csv")
        if len(frame) != rows:
            return f"{len(frame)} predictions, expected {rows}"
        if "y_true" in frame.columns and frame["y_true"].notna().any():
            return "unlabelled images got true labels"
        return None
    return check


def predictions_of(rows):
    def check(folder):
        import pandas as pd

        frame = pd.read_csv(folder / "p.csv")
        return None if len(frame) == rows else f"{len(frame)} predictions, expected {rows}"
    return check


def two_output_classes(folder):
    """A model saved (last.pt or best.pt) has the training split's 2 classes, not more."""
    import torch

    for name in ("last.pt", "best.pt"):
        if (folder / "run" / name).exists():
            classes = torch.load(folder / "run" / name, weights_only=True)["classes"]
            if len(classes) != 2:
                return f"{name} has {len(classes)} output classes {classes}, not the training split's 2"
    return None


# ------------------------------------------------------------------ notebook cells
START = "from finefcace.course import session as course\n"
NAN_PREDICTIONS = """
import numpy as np, pandas as pd
from finefcace.metrics import gender_task_report
frame = pd.DataFrame({"y_true": [0, 1] * 8, "y_pred": [0] * 16, "prob_0": [np.nan] * 16, "prob_1": [np.nan] * 16,
                      "tone": ["tone_1", "tone_2"] * 8, "gender": ["Female"] * 8 + ["Male"] * 8})
print(gender_task_report(frame, n_bootstrap=0).to_string())
"""


# ------------------------------------------------------------------ the cases
def _cases() -> list[Case]:
    F, D, N, S = "finefcace", "data_prep", "notebook", "script"
    train = ("train", "-c", "c.yaml", "-q")
    resolution = ("experiments/resolution.py", "--fairface", "none", "--celeba", "none", "--runs-root", "runs",
                  "--results", "results")
    # a study small enough to train in a minute where nothing refuses it first (the checkout before the checks)
    tiny = ("--utkface", "utk", "--sizes", "64", "--epochs", "1", "--max-train", "0", "--batch-size", "4",
            "--bootstrap", "10")
    photo_subset = ("scripts/photo_subset.py", "--utkface", "utk", "--out", "subset")
    cases = [
        # --- the training configuration
        Case("config-missing", F, "--config names a file that does not exist", ("train", "-c", "nope.yaml"),
             2, "does not exist"),
        Case("config-not-yaml", F, "the config file is not YAML", train, 2, "not valid YAML",
             lambda f, s: write_config(f, text="epochs: [3\n")),
        Case("config-not-mapping", F, "the config file holds a list", train, 2, "must hold a mapping",
             lambda f, s: write_config(f, text="- epochs\n- 3\n")),
        Case("config-unknown-key", F, "a misspelt key (epoch)", train, 2, "did you mean 'epochs'",
             config_with(epoch=3), absent=("run",)),
        Case("overrides-exponent", F, "overrides: {head_lr: 1e-3} (YAML reads 1e-3 as a string)", train, 0,
             '"finished": false', config_with(overrides={"head_lr": "1e-3"}, **ONE_BATCH),
             check=resolved_head_lr(0.001)),
        Case("overrides-not-a-number", F, "overrides: {head_lr: fast}", train, 2, "'overrides.head_lr' must be",
             config_with(overrides={"head_lr": "fast"}), absent=("run",)),
        Case("overrides-negative-lr", F, "overrides: {head_lr: -0.01}", train, 2, "'overrides.head_lr' must be > 0",
             config_with(overrides={"head_lr": -0.01}), absent=("run",)),
        Case("overrides-nan", F, "overrides: {backbone_lr: .nan}", train, 2, "'overrides.backbone_lr' must be",
             config_with(overrides={"backbone_lr": float("nan")}), absent=("run",)),
        Case("overrides-momentum", F, "overrides: {momentum: 1.5}", train, 2, "'overrides.momentum' must be",
             config_with(overrides={"momentum": 1.5}), absent=("run",)),
        Case("input-size-8", F, "input_size: 8", train, 2, "'input_size' must be at least 64",
             config_with(input_size=8), absent=("run",)),
        Case("batch-size-1", F, "batch_size: 1 (BatchNorm cannot train on one image)", train, 2,
             "'batch_size' must be at least 2", config_with(batch_size=1), absent=("run",)),
        Case("unknown-backbone", F, "backbone: resnet9000", train, 2, "unsupported backbone 'resnet9000'",
             config_with(backbone="resnet9000"), absent=("run",)),
        Case("experts-out-of-range", F, "experts: [9] (ResNet-18 has 5 stages)", train, 2, "'experts'",
             config_with(method="finefcace", experts=[9]), absent=("run",)),
        Case("device-cuda", F, "device: cuda on a machine without a GPU", train, 2, "'device'",
             config_with(device="cuda"), absent=("run",), needs_cpu_only=True),
        Case("device-unknown", F, "device: gpu0", train, 2, "'device'", config_with(device="gpu0"), absent=("run",)),
        Case("run-dir-file", F, "run_dir names a file", train, 2, "'run_dir'", a_file("run"), unchanged=("run",)),
        Case("run-dir-read-only", F, "run_dir in a folder that cannot be written", train, 2, "'run_dir'",
             config_with(run_dir="/proc/finefcace-run")),
        Case("config-json-corrupt", F, "the run_dir's config.json is not JSON", train, 2, "config.json",
             run_with(lambda f: (f / "run" / "config.json").write_text("{not json")),
             unchanged=("run/config.json", "run/last.pt", "run/best.pt")),
        Case("epochs-0", F, "epochs: 0", train, 2, "'epochs' must be >= 1", config_with(epochs=0), absent=("run",)),
        Case("min-delta-negative", F, "min_delta: -1", train, 2, "'min_delta'", config_with(min_delta=-1.0),
             absent=("run",)),
        Case("weights-missing-file", F, "weights: a .pth file that does not exist", train, 2, "nothing.pth",
             config_with(weights="nothing.pth"), absent=("run",)),
        Case("weights-unknown-name", F, "weights: IMAGENET_BOGUS", train, 2, "unknown weights 'IMAGENET_BOGUS'",
             config_with(weights="IMAGENET_BOGUS"), absent=("run",)),
        Case("protected-unknown", F, "protected: [skin] (no such column)", train, 2, "'protected'",
             config_with(protected=["skin"]), absent=("run",)),
        Case("synthetic-unknown-option", F, "synthetic: {n_trian: 8, ...} into a new folder", train, 2, "'synthetic'",
             config_with(root="fresh", synthetic={"n_trian": 8, "n_val": 4, "n_test": 6}), absent=("fresh", "run")),
        Case("synthetic-into-a-dataset", F, "synthetic faces generated into a folder holding other images", train, 2,
             "'root'", images_but_no_table, unchanged=("data/train/000000.png",), absent=("run",)),
        Case("target-missing", F, "target: smile (no such column)", train, 2, "'smile'", config_with(target="smile"),
             absent=("run",)),
        Case("table-missing", F, "table: a CSV that does not exist", train, 2, "does not exist",
             config_with(table="data/nope.csv", synthetic=None)),
        # --- the dataset table
        Case("table-bad-split", F, "a row whose split is 'training'", train, 2, "split",
             table_edit(lambda t: t.__setitem__("split", t["split"].replace({"train": "training"}))),
             absent=("run",)),
        Case("table-absolute-path", F, "a row whose path is absolute (/etc/hostname)", train, 2, "absolute",
             table_edit(row_path(0, "/etc/hostname")), absent=("run",)),
        Case("table-parent-path", F, "a row whose path climbs out of the root (../c.yaml)", train, 2, "'..'",
             table_edit(row_path(2, "../c.yaml")), absent=("run",)),
        Case("class-unseen-gender", F, "gender 'Other' only in the test split", train, 2, "'Other'",
             table_edit(first_of_split("gender", "test", "Other")), absent=("run",)),
        Case("class-unseen-attribute", F, "a 0/1 attribute with a 2 only in the test split (target Smiling)", train, 2,
             "test", table_edit(first_of_split("Smiling", "test", 2), target="Smiling", **ONE_BATCH),
             absent=("run",), check=two_output_classes),
        Case("split-overlap", F, "the same image in train and test", train, 0, "both",
             table_edit(lambda t: first_of_split("path", "test", t["path"].iloc[0])(t), **ONE_BATCH)),
        Case("image-missing", F, "a row whose image file is missing", train, 2, "missing",
             table_edit(row_path(1, "train/gone.png")), absent=("run",)),
        # --- resuming
        Case("resume-foreign-checkpoint", F, "last.pt saved by another configuration (head_lr 0.5)", train, 2,
             "last.pt", run_with(foreign_last_checkpoint), unchanged=("run/last.pt", "run/best.pt")),
        Case("checkpoints-without-config", F, "run_dir holds last.pt and best.pt but no config.json", train, 2,
             "config.json", run_with(files=("best.pt", "last.pt"), **ONE_BATCH),
             unchanged=("run/last.pt", "run/best.pt")),
        Case("corrupt-last-checkpoint", F, "a truncated last.pt", train, 2, "last.pt",
             run_with(lambda f: (truncate("last.pt")(f), (f / "run" / "summary.json").unlink())),
             unchanged=("run/last.pt",)),
        Case("corrupt-best-checkpoint", F, "a truncated best.pt (evaluate)", ("evaluate", "--run-dir", "run", "--out",
             "p.csv", "-q"), 2, "best.pt", run_with(truncate("best.pt")), absent=("p.csv",)),
        Case("corrupt-best-advice-followed", F, "a truncated best.pt, then its advice (train --set resume=false)",
             (*train, "--set", "resume=false"), 0, '"finished": true', run_with(truncate("best.pt"))),
        Case("orphan-temporary-file", F, "an interrupted save left .last.pt.*.tmp (1 MB)", train, 0, "temporary",
             run_with(orphan_temporary), absent=("run/.last.pt.k2j4x9.tmp",)),
        # --- evaluate and predict
        Case("nan-model-evaluate", F, "a best.pt whose weights are NaN (evaluate)",
             ("evaluate", "--run-dir", "run", "--out", "p.csv", "-q"), 2, "not finite", run_with(nan_model),
             absent=("p.csv",)),
        Case("nan-model-predict", F, "a best.pt whose weights are NaN (predict)",
             ("predict", "--run-dir", "run", "--table", "data/labels.csv", "--out", "p.csv", "-q"), 2, "not finite",
             run_with(nan_model), absent=("p.csv",)),
        Case("inf-model-evaluate", F, "a best.pt whose weights are inf", ("evaluate", "--run-dir", "run", "--out",
             "p.csv", "-q"), 2, "not finite", run_with(inf_model), absent=("p.csv",)),
        Case("predict-out-is-table", F, "predict --out names its own input table",
             ("predict", "--run-dir", "run", "--table", "data/labels.csv", "--out", "data/labels.csv", "-q"), 2,
             "labels.csv", run_with(), unchanged=("data/labels.csv",)),
        Case("predict-out-is-table-overwrite", F, "the same, with --overwrite",
             ("predict", "--run-dir", "run", "--table", "data/labels.csv", "--out", "data/labels.csv", "--overwrite",
              "-q"), 2, "labels.csv", run_with(), unchanged=("data/labels.csv",)),
        Case("predict-out-is-checkpoint", F, "predict --out run/best.pt",
             ("predict", "--run-dir", "run", "--table", "data/labels.csv", "--out", "run/best.pt", "-q"), 2,
             "best.pt", run_with(), unchanged=("run/best.pt",)),
        Case("predict-out-exists", F, "predict --out names an existing file",
             ("predict", "--run-dir", "run", "--table", "data/labels.csv", "--out", "mine.csv", "-q"), 2,
             "--overwrite", existing_file("mine.csv"), unchanged=("mine.csv",)),
        Case("predict-out-exists-overwrite", F, "the same, with --overwrite",
             ("predict", "--run-dir", "run", "--table", "data/labels.csv", "--out", "mine.csv", "--overwrite", "-q"),
             0, "wrote mine.csv", existing_file("mine.csv")),
        Case("evaluate-out-exists", F, "evaluate's default --out (predictions_test.csv) exists",
             ("evaluate", "--run-dir", "run", "-q"), 2, "--overwrite", run_with(),
             unchanged=("run/predictions_test.csv",)),
        Case("evaluate-out-folder", F, "evaluate --out names a folder", ("evaluate", "--run-dir", "run", "--out", "data",
             "-q"), 2, "folder", run_with()),
        Case("predict-unlabelled-table", F, "predict on a table without the target column",
             ("predict", "--run-dir", "run", "--table", "data/unlabelled.csv", "--out", "p.csv", "-q"), 0,
             "no labels", unlabelled_table, check=predictions_without_accuracy(6)),
        Case("predict-image-folder", F, "predict on a folder of images (no table)",
             ("predict", "--run-dir", "run", "--images", "photos", "--out", "p.csv", "-q"), 0, "no labels",
             image_folder, check=predictions_without_accuracy(3)),
        Case("predict-unknown-class", F, "predict on a table with gender 'Other'",
             ("predict", "--run-dir", "run", "--table", "data/other.csv", "--out", "p.csv", "-q"), 2, "'Other'",
             table_for_predict(lambda t: t.__setitem__("gender", t["gender"].where(t.index != t.index[-1], "Other"))),
             absent=("p.csv",)),
        Case("predict-absolute-path", F, "predict on a table with an absolute path",
             ("predict", "--run-dir", "run", "--table", "data/other.csv", "--out", "p.csv", "-q"), 2, "absolute",
             table_for_predict(lambda t: t.__setitem__("path", [*t["path"][:-1], "/etc/hostname"])),
             absent=("p.csv",)),
        Case("predict-root-missing", F, "predict --root names a folder that does not exist",
             ("predict", "--run-dir", "run", "--table", "data/labels.csv", "--root", "nowhere", "--out", "p.csv", "-q"),
             2, "nowhere", run_with(), absent=("p.csv",)),
        Case("evaluate-no-run", F, "evaluate --run-dir names no run", ("evaluate", "--run-dir", "nothing"), 2,
             "does not exist"),
        # --- data_prep
        Case("synthetic-out-exists", D, "synthetic --out names a folder holding a dataset",
             ("synthetic", "--out", "data", "--n-train", "8", "--n-val", "4", "--n-test", "4"), 2, "--overwrite",
             synthetic_folder, unchanged=("data/labels.csv", "data/train/000000.png")),
        Case("synthetic-out-exists-overwrite", D, "the same, with --overwrite",
             ("synthetic", "--out", "data", "--n-train", "8", "--n-val", "4", "--n-test", "4", "--size", "32",
              "--overwrite"), 0, "synthetic: 16 images", synthetic_folder),
        Case("synthetic-negative-count", D, "synthetic --n-train -5", ("synthetic", "--out", "new", "--n-train", "-5"),
             2, "'n_train'", absent=("new",)),
        Case("synthetic-size-4", D, "synthetic --size 4", ("synthetic", "--out", "new", "--size", "4"), 2, "'size'",
             absent=("new",)),
        Case("synthetic-knob-scalar", D, "synthetic --knob cue_contrast=1 (needs 4 numbers)",
             ("synthetic", "--out", "new", "--n-train", "8", "--knob", "cue_contrast=1"), 2, "cue_contrast",
             absent=("new",)),
        Case("celeba-parent-path", D, "a CelebA label file naming ../../outside.jpg",
             ("celeba", "--root", "celeba", "--out", "tables"), 2, "'..'", celeba_download("../../outside.jpg"),
             absent=("tables/celeba.csv",)),
        Case("celeba-absolute-path", D, "a CelebA label file naming /etc/hostname (--images '')",
             ("celeba", "--root", "celeba", "--images", "", "--out", "tables", "--labels-only"), 2, "absolute",
             celeba_download("/etc/hostname"), absent=("tables/celeba.csv",)),
        Case("cache-escapes", D, "the same ../../ label with --cache-size (resized copies)",
             ("celeba", "--root", "celeba", "--out", "tables", "--cache-size", "16", "--cache-dir", "cache/in"), 2,
             "'..'", celeba_download("../../outside.jpg"), absent=("tables/celeba.csv", "cache/outside.jpg")),
        Case("cache-size-4", D, "--cache-size 4", ("fairface", "--root", "fairface", "--out", "tables",
             "--cache-size", "4"), 2, "--cache-size", fairface_download, absent=("tables",)),
        Case("cache-dir-is-root", D, "--cache-dir is the dataset root", ("fairface", "--root", "fairface", "--out",
             "tables", "--cache-size", "16", "--cache-dir", "fairface"), 2, "--cache-dir", fairface_download,
             absent=("tables",)),
        Case("root-missing", D, "--root names no folder", ("fairface", "--root", "nowhere", "--out", "tables"), 2,
             "nowhere", absent=("tables",)),
        Case("table-exists", D, "the table to write exists already", ("fairface", "--root", "fairface", "--out",
             "tables"), 2, "--overwrite", with_table_already_written, unchanged=("tables/fairface.csv",)),
        Case("val-fraction", D, "--val-fraction 1.5", ("fairface", "--root", "fairface", "--out", "tables",
             "--val-fraction", "1.5"), 2, "--val-fraction", fairface_download, absent=("tables",)),
        Case("out-is-file", D, "--out names a file", ("fairface", "--root", "fairface", "--out", "c.yaml"), 2, "--out",
             lambda f, s: (fairface_download(f, s), (f / "c.yaml").write_text("x\n")), unchanged=("c.yaml",)),
        # --- notebooks (a cell in an IPython shell) and the library they call
        Case("notebook-unknown-parameter", N, "a profile sets 'epochz'",
             START + "epochs: int = 3\nepochz = 4\ncourse.start(globals())", 1, "error: unknown parameter 'epochz'"),
        Case("notebook-wrong-type", N, "a profile sets epochs: '3' (quoted)",
             START + "epochs: int = 3\nepochs = '3'\ncourse.start(globals())", 1, "error: parameter 'epochs' must be int"),
        Case("notebook-overrides-exponent", N, "a notebook's overrides {head_lr: '1e-3'}",
             START + "print(repr(course.train_config({'overrides': {'head_lr': '1e-3'}}).resolved()['head_lr']))",
             0, "0.001"),
        Case("metrics-nan-probabilities", N, "a fairness report on the predictions of a NaN model",
             START + "course.start({'__annotations__': {'x': int}, 'x': 1})\n" + NAN_PREDICTIONS, 1,
             "error: the predictions table's prob_0"),
        Case("metrics-zero-group", N, "Max/Min when a group's accuracy is 0",
             "import warnings\nwarnings.simplefilter('always')\nfrom finefcace.metrics import max_min_ratio\n"
             "print(max_min_ratio({'tone_1': 0.0, 'tone_2': 0.9}))", 0, "accuracy 0"),
        Case("metrics-infinite-input", N, "max_min_ratio of group accuracies holding inf",
             START + "course.start({'__annotations__': {'x': int}, 'x': 1})\n"
             "from finefcace.metrics import max_min_ratio\nprint(max_min_ratio([float('inf'), 0.5]))", 1,
             "error: group accuracies must be finite"),
        # --- issue 27: the experiment scripts check every option and folder before training
        Case("study-utkface-missing", S, "resolution.py --utkface names no folder", (*resolution, "--utkface",
             "nowhere"), 2, "--utkface nowhere is not a folder", absent=("runs", "results")),
        Case("study-utkface-wrong-dataset", S, "resolution.py --utkface names a FairFace download",
             (*resolution, "--utkface", "fairface"), 2, "no UTKFace photographs", fairface_download,
             absent=("runs", "results")),
        Case("study-epochs-0", S, "resolution.py --epochs 0", (*resolution, *tiny, "--epochs", "0"), 2,
             "--epochs must be at least 1", utkface_photos(), absent=("runs", "results")),
        Case("study-size-16", S, "resolution.py --sizes 16 (below the smallest input, 64 px)",
             (*resolution, *tiny, "--sizes", "16"), 2, "--sizes: 16 px is below", utkface_photos(),
             absent=("runs", "results")),
        Case("study-fractions-sum", S, "resolution.py --val-fraction 0.6 --test-fraction 0.5",
             (*resolution, *tiny, "--val-fraction", "0.6", "--test-fraction", "0.5"), 2, "sum must be below 1",
             utkface_photos(), absent=("runs", "results")),
        Case("study-fraction-zero", S, "resolution.py --test-fraction 0", (*resolution, *tiny, "--test-fraction", "0"),
             2, "--test-fraction must be between 0 and 1", utkface_photos(), absent=("runs", "results")),
        Case("study-seeds-repeated", S, "real_photographs.py --seeds 0 0 (a tiny study)",
             ("experiments/real_photographs.py", "--fairface", "none", "--celeba", "none", "--runs-root", "runs",
              "--results", "results", *tiny, "--seeds", "0", "0"), 2, "--seeds names 0 more than once",
             utkface_photos(), absent=("runs", "results")),
        Case("study-report-only-first", S, "resolution.py --report-only before any results exist",
             (*resolution, "--report-only"), 2, "no results to report yet", absent=("results/resolution.md",)),
        Case("study-results-is-file", S, "resolution.py --results names an existing file (a tiny study)",
             ("experiments/resolution.py", "--fairface", "none", "--celeba", "none", "--runs-root", "runs",
              "--results", "afile", *tiny, "--seeds", "0"), 2, "--results afile is a file", utkface_photos(),
             unchanged=("afile",), absent=("runs",)),
        Case("study-results-unwritable", S, "resolution.py --results in a folder that cannot be written",
             ("experiments/resolution.py", "--fairface", "none", "--celeba", "none", "--runs-root", "runs",
              "--results", "/proc/finefcace-results", *tiny, "--seeds", "0"), 2, "cannot be written",
             utkface_photos(), absent=("runs",)),
        Case("controls-two-sizes", S, "controls.py --sizes 96 128 (the controls compare at one size)",
             ("experiments/controls.py", "--utkface", "utk", "--fairface", "none", "--sizes", "96", "128",
              "--runs-root", "runs", "--results", "results"), 2, "error: --sizes: give one input size",
             utkface_photos(), absent=("runs", "results")),
        Case("seeds-unknown-study", S, "seeds.py --studies mian (misspelt)",
             ("experiments/seeds.py", "--studies", "mian", "--out", "results"), 2, "unknown study 'mian'",
             absent=("results",)),
        Case("seeds-profile-missing", S, "seeds.py --profile names no file",
             ("experiments/seeds.py", "--profile", "nowhere.yaml", "--out", "results"), 2,
             "--profile nowhere.yaml does not exist", absent=("results",)),
        Case("mitigation-report-only-first", S, "mitigation_methods.py --report-only before any results exist",
             ("experiments/mitigation_methods.py", "--report-only", "--out", "r.json"), 2, "no results to report yet",
             absent=("r.md",)),
        # --- issue 27: scripts/photo_subset.py and scripts/gpu_check.py
        Case("subset-cap-tiny", S, "photo_subset.py --max-mib 0.0001 (below one photograph)",
             (*photo_subset, "--max-mib", "0.0001"), 2, "admits no photograph", utkface_photos(), absent=("subset",)),
        Case("subset-cap-negative", S, "photo_subset.py --max-mib -5", (*photo_subset, "--max-mib", "-5"), 2,
             "--max-mib must be positive", utkface_photos(), absent=("subset",)),
        Case("subset-utkface-missing", S, "photo_subset.py --utkface names no folder",
             ("scripts/photo_subset.py", "--utkface", "nowhere", "--out", "subset"), 2, "--utkface nowhere",
             absent=("subset",)),
        Case("subset-skips-named", S, "photo_subset.py on a download with a dangling link and a file without labels",
             (*photo_subset, "--max-mib", "1"), 0, "skipped 1 photographs that cannot be read",
             utkface_photos(extra=unreadable_photo_names)),
        Case("gpu-check-out-file", S, "gpu_check.py --out names a file", ("scripts/gpu_check.py", "--tiny", "--out",
             "afile"), 2, "error: --out afile is a file", utkface_photos(n=0), unchanged=("afile",)),
        Case("gpu-check-utkface-missing", S, "gpu_check.py --utkface names no folder",
             ("scripts/gpu_check.py", "--tiny", "--out", "out", "--utkface", "nowhere", "--only", "resolution",
              "--budget", "120"), 2, "error: --utkface nowhere is not a folder", absent=("out",)),
        # --- issue 27: skipped inputs counted and named; an empty result is an error
        Case("predict-dangling-links", F, "predict --images: a dangling link and a link loop beside 3 images",
             ("predict", "--run-dir", "run", "--images", "photos", "--out", "p.csv", "-q"), 0,
             "skipped 2 of 5 image names", image_folder_with(), check=predictions_of(3)),
        Case("predict-only-dangling-links", F, "predict --images: a folder holding only dangling links",
             ("predict", "--run-dir", "run", "--images", "photos", "--out", "p.csv", "-q"), 2, "dangling",
             image_folder_with(images=0), absent=("p.csv",)),
        Case("predict-empty-jpeg-wording", F, "predict --images: an empty JPEG (the refusal says what stopped)",
             ("predict", "--run-dir", "run", "--images", "photos", "--out", "p.csv", "-q"), 2, "nothing was predicted",
             image_folder_with(dangling=False, empty_jpeg=True), absent=("p.csv",)),
        Case("utkface-wrong-folder", D, "data_prep utkface --root names a FairFace download",
             ("utkface", "--root", "fairface", "--out", "tables"), 2, "no utkface image could be labelled",
             fairface_download, absent=("tables/utkface.csv",)),
        Case("fairface-empty-label-file", D, "a 0-byte fairface_label_train.csv",
             ("fairface", "--root", "fairface", "--out", "tables"), 2, "is empty",
             fairface_with(lambda root: (root / "fairface_label_train.csv").write_bytes(b"")), absent=("tables",)),
        Case("fairface-margin125-only", D, "a FairFace root holding only the padding-1.25 images",
             ("fairface", "--root", "fairface", "--out", "tables"), 0, "padding-1.25",
             fairface_with(lambda root: (root / "fairface-img-margin025-trainval").rename(
                 root / "fairface-img-margin125-trainval"))),
        # --- issue 27: one training per run directory
        Case("stale-lock-file", F, "run_dir holds the lock file of a process that died (train)", train, 0,
             '"finished": true', run_with(stale_lock)),
    ]
    ids = [case.id for case in cases]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    return cases


CASES: list[Case] = _cases()


# ------------------------------------------------------------------ running a case
NOTEBOOK_RUNNER = """
import sys
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
result = shell.run_cell(sys.argv[1])
sys.stdout.flush()
sys.exit(0 if result.success else 1)
"""


def run_command(entry: str, command, folder: Path, python_path: str | None = None) -> Outcome:
    """Run one command in ``folder``: in this process (``python_path`` None; notebook cells and
    scripts always run in a subprocess) or as ``python -m <entry>`` with ``PYTHONPATH=python_path``;
    a script is the checkout's file (``python_path``, default this one) named first in ``command``."""
    if entry in ("notebook", "script") or python_path is not None:
        environment = dict(os.environ)
        environment["PYTHONPATH"] = python_path or str(PROJECT)
        environment.pop("FINEFCACE_DEBUG", None)
        environment.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        if entry == "notebook":
            argv = [sys.executable, "-c", NOTEBOOK_RUNNER, command]
        elif entry == "script":
            argv = [sys.executable, str(Path(python_path or PROJECT) / command[0]), *command[1:]]
        else:
            argv = [sys.executable, "-m", entry, *command]
        done = subprocess.run(argv, cwd=folder, env=environment, capture_output=True, text=True, timeout=900)
        return Outcome(done.returncode, done.stdout, done.stderr)
    from data_prep.cli import main as data_prep_main
    from finefcace.training.cli import main as finefcace_main

    main = finefcace_main if entry == "finefcace" else data_prep_main
    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)
    handler.setLevel(logging.WARNING)
    logging.getLogger().addHandler(handler)
    previous = Path.cwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(list(command))
            except SystemExit as exit_:
                status = exit_.code if isinstance(exit_.code, int) else 1
            except BaseException:  # noqa: BLE001 - a raw traceback is what the cases look for
                traceback.print_exc(file=err)
                status = 1
    finally:
        os.chdir(previous)
        logging.getLogger().removeHandler(handler)
    return Outcome(status, out.getvalue(), err.getvalue())


def _digest(path: Path) -> str | None:
    if path.is_dir():
        return "folder"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def run_case(case: Case, folder: Path, shared: Path, python_path: str | None = None) -> Outcome:
    """Set the case up in ``folder`` (empty), run it, and list what went wrong in ``problems``."""
    folder.mkdir(parents=True, exist_ok=True)
    if case.setup is not None:
        case.setup(folder, shared)
    before = {name: _digest(folder / name) for name in case.unchanged}
    outcome = run_command(case.entry, case.command, folder, python_path)
    problems = outcome.problems
    if outcome.traceback:
        problems.append("raw traceback")
    if outcome.status != case.status:
        problems.append(f"exit {outcome.status}, expected {case.status}")
    line = outcome.first_line(case.message)
    if case.message and case.message not in line:
        problems.append(f"message lacks {case.message!r}")
    for name, digest in before.items():
        if _digest(folder / name) != digest:
            problems.append(f"overwrote {name}")
    for name in case.absent:
        if (folder / name).exists():
            problems.append(f"wrote {name}")
    if case.check is not None:
        try:
            found = case.check(folder)
        except Exception as error:  # noqa: BLE001 - the check reads what the command left
            found = f"check failed: {type(error).__name__}: {error}"
        if found:
            problems.append(found)
    return outcome
