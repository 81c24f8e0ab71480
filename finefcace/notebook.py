"""Course helpers: what the notebooks of ``notebooks/`` call besides the library itself.

Every notebook opens with one typed ``parameters`` cell (papermill) and, right after it,
``course.start(globals())`` — the place where bad input stops: the check of
:mod:`finefcace.parameters` plus the course's rules for paths.

The rest are the few-line steps of each chapter that are worth a name and a test: the dataset
table made once (01), the expert, parameter and FLOP tables (02), runs shared between chapters
by train-or-load under ``<run_dir>/<name>`` (03-06), the attention walkthrough (03), the
iteration table (04), the paper-table lookups (05), and the inference-only ablations (06).
Figures of general use live in :mod:`finefcace.plots`; the course-specific ones are here.
Profiles are in ``configs/``; the chapter that introduces each helper is named in its docstring.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finefcace.parameters import ParameterError, check_parameters, project_root

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from finefcace.config import TrainConfig
    from finefcace.train import TrainResult

__all__ = [
    "FUSION_SUBSETS",
    "attention_steps",
    "box_shares",
    "cli_command",
    "comparison_maps",
    "describe_run",
    "evaluate_on",
    "expert_table",
    "figure_batch",
    "flop_table",
    "fusion_predictions",
    "fusion_scores",
    "fusion_table",
    "group_counts",
    "hyperparameter_table",
    "iteration_table",
    "our_methods",
    "our_rows",
    "paper_summaries_recomputed",
    "paper_table_key",
    "parameter_table",
    "prepare_dataset",
    "preset_differences",
    "protected_columns",
    "region_grid",
    "run_directory",
    "run_summary",
    "run_table",
    "split_loader",
    "stage_table",
    "start",
    "summary_columns",
    "summary_table",
    "table_location",
    "table_montage",
    "task_report",
    "threshold_table",
    "train_config",
    "train_or_load",
    "walkthrough_figure",
]


# ------------------------------------------------------------------------------ starting a chapter
def start(
    namespace: Mapping[str, Any],
    *,
    makes_table: bool = False,
    existing_paths: Iterable[str] | Mapping[str, str] = (),
    notebooks_dir: str | Path | None = None,
) -> dict[str, Any]:
    """The first cell after the parameters: :func:`check_parameters` with the course's rules
    for paths, then work from the project root (relative paths in the profiles — ``data/...``,
    ``runs/...`` — mean the same as for ``python -m finefcace`` run from there), show the
    trainer's per-epoch log lines, show figures inline (also the ``Figure`` objects of
    :mod:`finefcace.plots`, which pyplot does not track) and keep tables readable. Returns
    the checked parameters. Book: every notebook.

    The rules: ``dataset`` and ``synthetic`` must agree (synthetic data needs the ``synthetic``
    options; a real dataset needs ``synthetic: null``); with a real dataset ``root`` (its
    official layout) must exist, and ``table`` too unless this chapter makes it
    (``makes_table``, chapter 1); a ``weights`` value that names a file must exist; the
    folders of ``cross_datasets`` must exist.
    """
    fixes = dict(existing_paths) if isinstance(existing_paths, Mapping) else dict.fromkeys(existing_paths, "")
    declared = namespace.get("__annotations__", {})
    dataset, synthetic = namespace.get("dataset"), namespace.get("synthetic")
    if "dataset" in declared and "synthetic" in declared:
        if dataset == "synthetic" and synthetic is None:
            raise ParameterError("parameter 'dataset' is 'synthetic' but 'synthetic' is null: give the synthetic "
                                 "options (e.g. synthetic: {n_train: 1600, n_val: 320, n_test: 640, size: 64, seed: 0})")
        if dataset != "synthetic" and synthetic is not None:
            raise ParameterError(f"parameter 'dataset' is {dataset!r} but 'synthetic' is set: with a real dataset "
                                 "set synthetic: null (the paper profiles in configs/ do)")
    if synthetic is None and "root" in declared:
        fixes.setdefault("root", f"Put the {dataset or 'dataset'} download there in its official layout "
                                 "(book/reproduce.md), or point root at it")
        if "table" in declared and not makes_table:
            fixes.setdefault("table", "Run notebooks/01_dataset_preparation.ipynb with this profile first: "
                                      "it writes the table")
    weights = namespace.get("weights")
    if "weights" in declared and isinstance(weights, str) and (
            Path(weights).suffix in (".pth", ".pt", ".bin", ".ckpt", ".tar") or "/" in weights):
        fixes.setdefault("weights", "Point weights at a state-dict file of the torchvision backbone, "
                                    "or use a torchvision weights name such as IMAGENET1K_V1, or null")
    if "cross_datasets" in declared:
        fixes.setdefault("cross_datasets", "Put that dataset there in its official layout, or remove it "
                                           "from cross_datasets")
    import logging
    import os
    import sys

    values = check_parameters(namespace, existing_paths=fixes, notebooks_dir=notebooks_dir)
    os.chdir(project_root())
    log = logging.getLogger("finefcace")
    if not any(getattr(h, "_finefcace_course", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._finefcace_course = True  # type: ignore[attr-defined]
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    try:  # figures that are not pyplot's (finefcace.plots) render as images only once inline is on
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None and getattr(shell, "kernel", None) is not None:
            shell.run_line_magic("matplotlib", "inline")
    except ImportError:  # pragma: no cover - outside Jupyter nothing is displayed anyway
        pass
    try:
        import pandas as pd

        pd.set_option("display.width", 160)
        pd.set_option("display.max_columns", 40)
        pd.set_option("display.precision", 3)
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    return values


# ------------------------------------------------------------------------------ chapter 01: data
SYNTHETIC_ROOT = "data/synthetic"
TABLES_DIR = "data/tables"


def table_location(dataset: str, root: str | None, table: str | None) -> Path:
    """Where a dataset's table lives: ``table`` if given; ``<root>/labels.csv`` for synthetic
    data (as the trainer reads it); ``data/tables/<dataset>.csv`` for a real dataset."""
    if table is not None:
        return Path(table)
    if dataset == "synthetic":
        return Path(root or SYNTHETIC_ROOT) / "labels.csv"
    return Path(TABLES_DIR) / f"{dataset}.csv"


def _synthetic_is_current(root: Path, options: Mapping[str, Any]) -> bool:
    """Does ``root`` hold the synthetic set ``options`` describes (split sizes, image size,
    seed, bias knobs)? Compared with the ``bias.json`` and ``labels.csv`` the generator wrote."""
    import dataclasses

    import pandas as pd

    from finefcace.synthetic import resolve_bias

    recorded_file, table_file = root / "bias.json", root / "labels.csv"
    if not (recorded_file.is_file() and table_file.is_file()):
        return False
    recorded = json.loads(recorded_file.read_text())
    counts = pd.read_csv(table_file, usecols=["split"])["split"].value_counts().to_dict()
    if any(counts.get(split, 0) != int(options.get(f"n_{split}", 0)) for split in ("train", "val", "test")):
        return False
    knobs = {k: v for k, v in options.items() if k not in ("n_train", "n_val", "n_test", "size", "seed", "workers", "bias")}
    expected = {"size": int(options.get("size", 64)), "seed": int(options.get("seed", 0)),
                **dataclasses.asdict(resolve_bias(options.get("bias"), **knobs))}
    plain = lambda v: [float(x) for x in v] if isinstance(v, (list, tuple)) else v  # noqa: E731
    return all(plain(recorded.get(key)) == plain(value) for key, value in expected.items())


def prepare_dataset(dataset: str, root: str | None, table: str | None = None,
                    synthetic: Mapping[str, Any] | None = None, *,
                    input_size: int | None = None) -> tuple["pd.DataFrame", Path]:
    """The course's dataset table, made once and reused (chapter 01). Returns (table, path).

    - ``dataset="synthetic"``: render :func:`finefcace.synthetic.generate_synthetic` into
      ``root`` with the ``synthetic`` options, unless ``root`` already holds exactly that set
      (same split sizes, image size, seed and bias knobs): then it is read back. The image
      size defaults to ``input_size``, as in the trainer.
    - a real dataset (``fairface``, ``utkface``, ``lfwa``, ``celeba``): its adapter
      (:func:`finefcace.datasets.dataset_table`) reads the official layout under ``root`` and
      the table is written to ``table`` (default ``data/tables/<dataset>.csv``); an existing
      table is read back.

    Book: ``notebooks/01_dataset_preparation.ipynb``.
    """
    from finefcace import data

    path = table_location(dataset, root, table)
    if dataset == "synthetic":
        if synthetic is None:
            raise ParameterError("dataset 'synthetic' needs the 'synthetic' parameter "
                                 "(e.g. synthetic: {n_train: 1600, n_val: 320, n_test: 640, size: 64, seed: 0})")
        folder = Path(root or SYNTHETIC_ROOT)
        if path != folder / "labels.csv":
            raise ParameterError(f"for synthetic data the table is <root>/labels.csv ({folder / 'labels.csv'}); "
                                 f"leave 'table' unset (got {str(path)!r})")
        options = dict(synthetic)
        if input_size is not None:
            options.setdefault("size", input_size)
        if not _synthetic_is_current(folder, options):
            from finefcace.synthetic import generate_synthetic

            generate_synthetic(folder, **options)
        return data.load_table(path), path
    if path.is_file():
        return data.load_table(path), path
    if root is None:
        raise ParameterError(f"dataset {dataset!r} needs 'root': the folder holding its official layout")
    from finefcace.datasets import dataset_table

    frame = dataset_table(dataset, root)
    data.save_table(frame, path)
    return frame, path


def protected_columns(table: "pd.DataFrame") -> list[str]:
    """The protected columns a table carries, in report order: race or tone, then gender."""
    return [c for c in ("race", "tone", "gender") if c in table.columns]


def group_counts(table: "pd.DataFrame", columns: Iterable[str] | None = None) -> "pd.DataFrame":
    """Images per split (rows) and protected group (columns), with totals.
    Book: ``notebooks/01_dataset_preparation.ipynb``."""
    import pandas as pd

    columns = list(columns) if columns is not None else protected_columns(table)
    counts = pd.crosstab(table["split"], [table[c] for c in columns], margins=True, margins_name="total")
    order = [s for s in ("train", "val", "test") if s in counts.index] + ["total"]
    return counts.reindex(order)


def table_montage(table: "pd.DataFrame", root: str | Path, *, columns: Iterable[str] | None = None,
                  per_group: int = 4, split: str = "test", size: int = 96, title: str | None = None):
    """A grid of a table's images: one row per protected group, the first ``per_group``
    images of ``split`` in each (for real datasets; synthetic data has
    :func:`finefcace.synthetic.synthetic_montage`). Book: ``notebooks/01_dataset_preparation.ipynb``."""
    from finefcace.data import read_image

    columns = list(columns) if columns is not None else protected_columns(table)
    rows = table[table["split"] == split]
    groups = list(rows.groupby(columns, sort=True)) if columns else [("all", rows)]
    fig = _figure(per_group * 1.2, len(groups) * 1.25)
    axes = fig.subplots(len(groups), per_group, squeeze=False)
    for r, (group, frame) in enumerate(groups):
        paths = frame["path"].tolist()[:per_group]
        for k in range(per_group):
            ax = axes[r, k]
            ax.set_xticks([])
            ax.set_yticks([])
            if k < len(paths):
                ax.imshow(read_image(Path(root) / paths[k]).resize((size, size)))
        label = " / ".join(map(str, group)) if isinstance(group, tuple) else str(group)
        axes[r, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------ chapter 02: experts
def _meta_model(model: Any) -> Any:
    """A structural copy of ``model`` on PyTorch's meta device: shapes and FLOPs, no arithmetic."""
    import copy

    return copy.deepcopy(model).to("meta").eval()


def _count(parameters: Iterable[Any]) -> int:
    return int(sum(p.numel() for p in parameters))


def stage_table(model: Any, input_size: int) -> "pd.DataFrame":
    """The backbone's stages (paper §4.2): layers, output stride, channels, map size at
    ``input_size``, parameters, and which experts end there. Book: ``notebooks/02_experts.ipynb``."""
    import pandas as pd

    rows = []
    for index, stage in enumerate(model.stages, start=1):
        stride, channels = model.stage_strides[index - 1], model.stage_channels[index - 1]
        side = -(-input_size // stride)  # ceil: the convolutions pad
        ends = [f"e_{n + 1}" for n, m in enumerate(model.expert_stages) if m == index]
        rows.append({"stage": index, "layers": ", ".join(name for name, _ in stage.named_children()),
                     "stride": stride, "channels": channels, "map": f"{side}x{side}",
                     "parameters": _count(stage.parameters()), "expert ends here": ", ".join(ends) or "-"})
    return pd.DataFrame(rows).set_index("stage")


def expert_table(model: Any, input_size: int) -> "pd.DataFrame":
    """Each expert e_n (paper §3.1, eqs. 1-3): the stages it covers, the shapes of x_n,
    x''_n and v_n for one ``input_size``² image, and the parameters of F_n and f_n.
    Shapes come from one forward pass on the meta device. Book: ``notebooks/02_experts.ipynb``."""
    import pandas as pd
    import torch

    meta = _meta_model(model)
    with torch.no_grad():
        x = torch.zeros(1, 3, input_size, input_size, device="meta")
        features = meta.backbone_features(x)
        heads = [meta.expert_head(n, f) for n, f in enumerate(features)]
    rows = []
    for n, (feature, (logits, maps, descriptor)) in enumerate(zip(features, heads)):
        rows.append({
            "expert": f"e_{n + 1}", "stages": f"1..{model.expert_stages[n]}",
            "x_n": "x".join(map(str, feature.shape[1:])), "x''_n": "x".join(map(str, maps.shape[1:])),
            "v_n": int(descriptor.shape[1]), "p_n": int(logits.shape[1]),
            "F_n parameters": _count(model.descriptor_blocks[n].parameters()) + _count(model.poolings[n].parameters()),
            "f_n parameters": _count(model.classifiers[n].parameters()),
        })
    rows.append({"expert": "concat", "stages": "-", "x_n": "-", "x''_n": "-",
                 "v_n": int(sum(h[2].shape[1] for h in heads)), "p_n": model.num_classes,
                 "F_n parameters": 0, "f_n parameters": _count(model.concat_classifier.parameters())})
    return pd.DataFrame(rows).set_index("expert")


def parameter_table(model: Any, baseline: Any | None = None) -> "pd.DataFrame":
    """Parameters of FineFACE by part (backbone stages, descriptor blocks F_n, classifiers
    f_n, concatenation classifier f_oval) beside the baseline's. Book: ``notebooks/02_experts.ipynb``."""
    import pandas as pd

    parts = {
        "backbone stages (shared)": _count(model.backbone_parameters()),
        "descriptor blocks F_n": _count(model.descriptor_blocks.parameters()) + _count(model.poolings.parameters()),
        "expert classifiers f_n": _count(model.classifiers.parameters()),
        "concatenation classifier f_oval": _count(model.concat_classifier.parameters()),
    }
    parts["FineFACE total"] = _count(model.parameters())
    frame = pd.DataFrame({"parameters": parts})
    if baseline is not None:
        frame.loc["baseline total (backbone + GAP + Linear)", "parameters"] = _count(baseline.parameters())
    frame["parameters"] = frame["parameters"].astype(int)
    frame["millions"] = (frame["parameters"] / 1e6).round(2)
    return frame


def flop_table(model: Any, input_size: int, baseline: Any | None = None) -> "pd.DataFrame":
    """Forward-pass FLOPs per image (``torch.utils.flop_counter.FlopCounterMode``, on the meta
    device: exact counts of the convolutions and matrix products, no arithmetic run).

    Rows: the baseline's forward; FineFACE's full forward (N experts + concatenation); each
    expert alone (``forward_expert``, Algorithm 1 steps 2..N); one training iteration's
    forwards (steps 1, 2..N, N+1, N+2 of Algorithm 1; backward passes cost about twice as much
    again); fused inference (raw image and A_oval, paper §3.3). Book: ``notebooks/02_experts.ipynb``.
    """
    import pandas as pd
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    def flops(module: Any, call) -> int:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            call(module)
        return int(counter.get_total_flops())

    x = torch.zeros(1, 3, input_size, input_size, device="meta")
    meta = _meta_model(model)
    full = flops(meta, lambda m: m(x))
    experts = [flops(meta, lambda m, n=n: m.forward_expert(x, n)) for n in range(model.num_experts)]
    rows = {}
    if baseline is not None:
        rows["baseline forward"] = flops(_meta_model(baseline), lambda m: m(x))
    rows["FineFACE forward (N experts + concat)"] = full
    for n, value in enumerate(experts):
        rows[f"expert e_{n + 1} alone"] = value
    # Algorithm 1: step 1 runs the whole model (the deepest expert's loss; the CAMs need every
    # head), steps 2..N one shallower expert each, steps N+1 and N+2 the whole model again.
    rows["training iteration, forwards (N+2 steps)"] = full + sum(experts[:-1]) + 2 * full
    rows["fused inference (raw + A_oval)"] = 2 * full
    frame = pd.DataFrame({"GFLOPs": {k: round(v / 1e9, 3) for k, v in rows.items()}})
    reference = rows.get("baseline forward", full)
    frame["x baseline forward" if baseline is not None else "x FineFACE forward"] = \
        [round(v / reference, 2) for v in rows.values()]
    return frame


def preset_differences(first: str = "paper", second: str = "official_code") -> "pd.DataFrame":
    """The preset keys whose values differ between two presets (``finefcace.presets``).
    Book: ``notebooks/02_experts.ipynb``; the reasons are in ``book/decisions.md``."""
    import pandas as pd

    from finefcace.presets import get_preset

    a, b = get_preset(first), get_preset(second)
    keys = [k for k in a if a[k] != b.get(k)] + [k for k in b if k not in a]
    return pd.DataFrame({first: [a.get(k) for k in keys], second: [b.get(k) for k in keys]},
                        index=pd.Index(keys, name="preset key"))


# ------------------------------------------------------------------------------ runs (chapters 03-06)
def train_config(params: Mapping[str, Any], **changes: Any) -> "TrainConfig":
    """A checked :class:`finefcace.config.TrainConfig` from a notebook's parameters: the
    parameters that are training-config keys (same names), then ``changes``. Progress bars
    are off in notebooks (the per-epoch log lines remain). Book: ``notebooks/04_training.ipynb``."""
    import dataclasses

    from finefcace.config import TrainConfig, load_config

    keys = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in params.items() if k in keys}
    values.setdefault("progress", False)
    values.update(changes)
    return load_config(values)


def run_directory(base: str | Path, name: str) -> Path:
    """Where run ``name`` of a profile lives: ``<run_dir>/<name>`` (e.g. ``runs/quick/gender-finefcace``)."""
    return Path(base) / name


def train_or_load(params: Mapping[str, Any], name: str, **changes: Any) -> "TrainResult":
    """Train-or-load run ``name`` (``<run_dir>/<name>``) of a notebook's parameters with
    ``changes``: a finished run of the same configuration is loaded, an unfinished one
    resumed, otherwise it trains (:func:`finefcace.train.train_or_load`). Chapters 03-06 share
    runs this way, so only the first chapter that needs a run trains it.
    Book: ``notebooks/04_training.ipynb``."""
    # finefcace.train (the module) by its full name: the package root exports a function `train`
    from finefcace.train import train_or_load as train_or_load_run

    config = train_config(params, **changes)
    config = config.replace(run_dir=str(run_directory(params.get("run_dir", config.run_dir), name)))
    return train_or_load_run(config)


def cli_command(params: Mapping[str, Any], name: str, profile: str = "<profile>.yaml", **changes: Any) -> str:
    """The command line that trains the same run as :func:`train_or_load` from a notebook
    profile (``python -m finefcace train --profile``, which reads its training keys) (chapter 04)."""
    sets = [f"run_dir={run_directory(params.get('run_dir', 'runs/default'), name).as_posix()}"]
    sets += [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in changes.items()]
    return f"python -m finefcace train --profile {profile} " + " ".join(f"--set {s}" for s in sets)


def describe_run(result: "TrainResult", data: str | None = None) -> str:
    """What produced a run's numbers, for captions and table labels: data (marked
    **synthetic** when it is), backbone, input size, epochs, hardware.
    Book: ``notebooks/04_training.ipynb``, ``05_evaluation.ipynb``."""
    config = result.config
    resolved = config.resolved()
    if data is None:
        data = "synthetic faces" if config.synthetic is not None else Path(config.table or config.root or "?").stem
    elif config.synthetic is not None and "synthetic" not in data.lower():
        data = f"synthetic {data}"
    epochs = result.summary.get("epochs_run", config.epochs)
    limit = f" (<= {config.max_batches} batches each)" if config.max_batches else ""
    device = result.summary.get("device", config.device)
    return (f"{data}, {resolved['backbone']}{' pretrained' if config.weights else ' from scratch'}, "
            f"{resolved['input_size']} px, {epochs} epoch{'s' if epochs != 1 else ''}{limit}, {device}")


# ------------------------------------------------------------------------------ chapter 03: attention
def run_table(result: "TrainResult") -> tuple["pd.DataFrame", Path]:
    """The dataset table and image root a run was trained on (from its ``config.json``)."""
    from finefcace import data

    saved = json.loads((Path(result.run_dir) / "config.json").read_text())
    return data.load_table(saved["table"]), Path(saved["root"])


def figure_batch(result: "TrainResult", *, split: str = "test", per_group: int = 1,
                 columns: Iterable[str] | None = None) -> tuple[Any, Any, "pd.DataFrame"]:
    """A small, deterministic batch for figures: the first ``per_group`` images of ``split``
    in each protected group (e.g. tone × gender), as the model sees them (test transform).
    Returns (images (B, 3, H, W), labels (B,), the table rows). Book: chapters 03 and 05."""
    import torch

    from finefcace import data

    table, root = run_table(result)
    columns = list(columns) if columns is not None else protected_columns(table)
    rows = table[table["split"] == split]
    if columns:
        rows = rows.groupby(columns, sort=True, group_keys=False).head(per_group)
        rows = rows.sort_values(columns, kind="stable")
    else:
        rows = rows.head(per_group)
    size = result.config.resolved()["input_size"]
    dataset = data.FaceTableDataset(rows, root, result.config.target, classes=result.classes,
                                    transform=data.test_transform(size))
    items = [dataset[i] for i in range(len(dataset))]
    images = torch.stack([item[0] for item in items])
    labels = torch.tensor([item[1] for item in items])
    return images, labels, rows


def attention_steps(model: Any, images: Any, threshold: float = 0.5, pad: float = 0.1) -> dict[str, Any]:
    """Every intermediate quantity of paper §3.2 for a batch, step by step, with the library's
    own functions: the predicted classes k_n; the CAMs Ω_n (B, h_n, w_n); Ω̃_n upsampled to the
    input; Ω̃_n^norm (eq. 4); the masks Ω̃_n^norm ≥ t; the boxes (grown by ``pad``); the regions
    A_n; and the same for the overall map (the normalised maps summed, normalised again) and
    A_oval. Book: ``notebooks/03_attention_crop.ipynb``."""
    import torch

    from finefcace import attention

    size = tuple(images.shape[-2:])
    with torch.no_grad():
        output = model.eval()(images)
        cams = attention.class_activation_maps(model, output)
        upsampled = [attention.upsample_maps(cam, size) for cam in cams]
        normalised = [attention.normalize_maps(u)[0] for u in upsampled]
        overall = attention.normalize_maps(torch.stack(normalised).sum(dim=0))[0]
        maps = [*normalised, overall]
        boxes = [attention.boxes_from_maps(m, threshold, pad) for m in maps]
        regions = [attention.crop_and_resize(images, b) for b in boxes]
    return {
        "output": output, "classes": [logits.argmax(dim=1) for logits in output.expert_logits],
        "cams": cams, "upsampled": upsampled, "normalised": normalised, "overall": overall,
        "masks": [m >= threshold for m in maps], "boxes": boxes, "regions": regions,
        "threshold": threshold, "pad": pad,
    }


def _figure(width: float, height: float) -> Any:
    """A matplotlib figure not registered with pyplot (no double display in notebooks, no leak);
    show it by making it a cell's last expression or with ``display``."""
    import matplotlib.pyplot  # noqa: F401  (registers the notebook display of Figure objects)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _show(ax: Any, picture: Any, title: str | None = None, **kwargs: Any) -> None:
    ax.imshow(picture, **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def walkthrough_figure(images: Any, steps: Mapping[str, Any], index: int = 0, *, caption: str = ""):
    """One image through paper §3.2, one row per expert and one for the overall map:
    Ω_n at its own resolution, upsampled Ω̃_n, normalised Ω̃_n^norm (eq. 4), the mask ≥ t,
    the box (grown by the padding) on the input, and the cropped-and-resized region A_n.
    Book: ``notebooks/03_attention_crop.ipynb``."""
    from matplotlib.patches import Rectangle

    from finefcace.data import denormalize

    picture = denormalize(images[index : index + 1])[0].permute(1, 2, 0).cpu().numpy()
    n_experts = len(steps["cams"])
    titles = [r"$\Omega_n$ (CAM)", r"$\tilde\Omega_n$ upsampled", r"$\tilde\Omega_n^{norm}$ (eq. 4)",
              f"mask $\\geq$ t = {steps['threshold']}", f"box (+{steps['pad']:.0%} per side)", "region $A_n$"]
    fig = _figure(1.7 * len(titles), 1.75 * (n_experts + 1))
    axes = fig.subplots(n_experts + 1, len(titles), squeeze=False)
    for row in range(n_experts + 1):
        is_overall = row == n_experts
        name = r"overall ($A_{oval}$)" if is_overall else f"expert $e_{row + 1}$"
        if is_overall:
            _show(axes[row, 0], picture, None)
            axes[row, 0].set_title("input" if row == 0 else "", fontsize=8)
            _show(axes[row, 1], sum(n[index] for n in steps["normalised"]).cpu().numpy(), None, cmap="jet")
        else:
            _show(axes[row, 0], steps["cams"][row][index].cpu().numpy(), None, cmap="jet")
            _show(axes[row, 1], steps["upsampled"][row][index].cpu().numpy(), None, cmap="jet")
        normalised = steps["overall"] if is_overall else steps["normalised"][row]
        _show(axes[row, 2], normalised[index].cpu().numpy(), None, cmap="jet", vmin=0, vmax=1)
        _show(axes[row, 3], steps["masks"][row][index].cpu().numpy(), None, cmap="gray", vmin=0, vmax=1)
        _show(axes[row, 4], picture, None)
        x0, y0, x1, y1 = (int(v) for v in steps["boxes"][row][index])
        axes[row, 4].add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color="yellow", lw=1.5))
        region = denormalize(steps["regions"][row][index : index + 1])[0].permute(1, 2, 0).cpu().numpy()
        _show(axes[row, 5], region, None)
        axes[row, 0].set_ylabel(name, fontsize=9)
    for column, title in enumerate(titles):
        axes[0, column].set_title(title, fontsize=8)
    axes[n_experts, 1].set_title(r"$\sum_n \tilde\Omega_n^{norm}$", fontsize=8)
    axes[n_experts, 2].set_title(r"$\tilde\Omega_{oval}^{norm}$", fontsize=8)
    if caption:
        fig.text(0.5, 0.0, caption, ha="center", va="top", fontsize=7, color="0.35", wrap=True)
    fig.tight_layout()
    return fig


def region_grid(images: Any, steps: Mapping[str, Any], *, row_labels: Iterable[str] | None = None,
                caption: str = ""):
    """The inputs and the regions A_1..A_N, A_oval the model proposes for them (one row per
    image), with each box's share of the image. Book: ``notebooks/03_attention_crop.ipynb``."""
    from finefcace.data import denormalize

    pictures = denormalize(images).permute(0, 2, 3, 1).cpu().numpy()
    regions = [denormalize(r).permute(0, 2, 3, 1).cpu().numpy() for r in steps["regions"]]
    height, width = pictures.shape[1:3]
    names = ["input"] + [f"$A_{n + 1}$" for n in range(len(regions) - 1)] + [r"$A_{oval}$"]
    labels = list(row_labels) if row_labels is not None else [""] * len(pictures)
    fig = _figure(1.45 * len(names), 1.5 * len(pictures))
    axes = fig.subplots(len(pictures), len(names), squeeze=False)
    for i in range(len(pictures)):
        _show(axes[i, 0], pictures[i], names[0] if i == 0 else None)
        axes[i, 0].set_ylabel(labels[i], fontsize=7)
        for j, region in enumerate(regions, start=1):
            x0, y0, x1, y1 = (int(v) for v in steps["boxes"][j - 1][i])
            share = (x1 - x0) * (y1 - y0) / (height * width)
            _show(axes[i, j], region[i], (names[j] + "\n" if i == 0 else "") + f"{share:.0%} of image")
    if caption:
        fig.text(0.5, 0.0, caption, ha="center", va="top", fontsize=7, color="0.35", wrap=True)
    fig.tight_layout()
    return fig


def box_shares(steps: Mapping[str, Any]) -> "pd.DataFrame":
    """Share of the image each box covers, per expert and for A_oval (mean, min, max over the batch)."""
    import pandas as pd

    rows = {}
    n_experts = len(steps["cams"])
    for j, boxes in enumerate(steps["boxes"]):
        height, width = steps["overall"].shape[-2:]
        share = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).float() / (height * width)
        name = "A_oval" if j == n_experts else f"A_{j + 1}"
        rows[name] = {"mean": float(share.mean()), "min": float(share.min()), "max": float(share.max())}
    return (100 * pd.DataFrame(rows).T).round(1).rename(columns=lambda c: f"{c} share of image (%)")


# ------------------------------------------------------------------------------ chapter 04: training
def hyperparameter_table(config: "TrainConfig", reference: str = "paper") -> "pd.DataFrame":
    """The hyper-parameters in force for a config beside the ``reference`` preset's, with the
    ones the profile changed marked. Book: ``notebooks/04_training.ipynb``."""
    import pandas as pd

    from finefcace.presets import get_preset

    paper, used = get_preset(reference), config.resolved()
    keys = list(dict.fromkeys([*paper, *used]))
    plain = lambda v: str(list(v) if isinstance(v, tuple) else v)  # noqa: E731
    return pd.DataFrame({f"preset {reference!r}": [plain(paper.get(k)) for k in keys],
                         "this run": [plain(used.get(k)) for k in keys],
                         "changed": ["yes" if plain(paper.get(k)) != plain(used.get(k)) else "" for k in keys]},
                        index=pd.Index(keys, name="key"))


def _parameter_groups(model: Any) -> dict[str, list[Any]]:
    groups = {f"stage {i + 1}": list(stage.parameters()) for i, stage in enumerate(model.stages)}
    for n in range(model.num_experts):
        groups[f"F_{n + 1}"] = list(model.descriptor_blocks[n].parameters()) + list(model.poolings[n].parameters())
        groups[f"f_{n + 1}"] = list(model.classifiers[n].parameters())
    groups["f_oval"] = list(model.concat_classifier.parameters())
    return groups


def _compress(names: list[str]) -> str:
    """["stage 1", "stage 2", "stage 3", "F_3"] -> "stages 1-3, F_3"."""
    stages = [int(n.split()[1]) for n in names if n.startswith("stage ")]
    others = [n for n in names if not n.startswith("stage ")]
    parts = [f"stages {stages[0]}-{stages[-1]}" if len(stages) > 1 else f"stage {stages[0]}"] if stages else []
    return ", ".join(parts + others) or "none"


def iteration_table(model: Any, optimizer: Any, images: Any, labels: Any, **options: Any) -> "pd.DataFrame":
    """Run one FineFACE iteration (:func:`finefcace.train.finefcace_iteration`, Algorithm 1)
    and report each of its N+2 optimizer steps: its name, its input, which parts of the model
    it updated (parameters that changed), and its loss. Book: ``notebooks/04_training.ipynb``."""
    import pandas as pd
    import torch

    from finefcace.train import finefcace_iteration

    groups = _parameter_groups(model)
    snapshot = {name: [p.detach().clone() for p in params] for name, params in groups.items()}
    rows = []

    def on_step(info: dict[str, Any]) -> None:
        changed = []
        for name, params in groups.items():
            if any(not torch.equal(p.detach(), old) for p, old in zip(params, snapshot[name])):
                changed.append(name)
                snapshot[name] = [p.detach().clone() for p in params]
        rows.append({"step": info["step"], "name": info["name"], "input": info["input_name"],
                     "updated": _compress(changed), "loss": float(info["loss"])})

    model.train()
    finefcace_iteration(model, optimizer, images, labels, on_step=on_step, **options)
    return pd.DataFrame(rows).set_index("step")


def run_summary(results: Mapping[str, "TrainResult"]) -> "pd.DataFrame":
    """One row per run: epochs run, best epoch, early stop, validation and test accuracy (%)."""
    import pandas as pd

    rows = {}
    for name, result in results.items():
        summary = result.summary
        rows[name] = {"epochs run": summary.get("epochs_run"), "best epoch": summary.get("best_epoch"),
                      "stopped early": summary.get("stopped_early"),
                      "val accuracy (%)": 100 * summary.get("val_accuracy", float("nan")),
                      "test accuracy (%)": 100 * summary.get("test_accuracy", float("nan"))}
    return pd.DataFrame(rows).T


# ------------------------------------------------------------------------------ chapter 05: evaluation
def paper_table_key(dataset: str, backbone: str | None = None, target: str = "gender") -> tuple[str, str | None]:
    """The paper table our results on ``dataset`` sit beside, and the dataset name it uses:
    gender — Table 2 (FairFace, ResNet-50; also the layout for the synthetic faces), Table 9
    (FairFace, DenseNet-121), Table 3 (UTKFace, LFWA+), Table 4 (CelebA); an attribute target —
    Table 6. Book: ``notebooks/05_evaluation.ipynb``."""
    if target != "gender":
        return "table6", None
    if dataset == "utkface":
        return "table3", "UTKFace"
    if dataset == "lfwa":
        return "table3", "LFWA+"
    if dataset == "celeba":
        return "table4", None
    return ("table9" if (backbone or "").startswith("densenet") else "table2"), None


def task_report(predictions: "pd.DataFrame", target: str, *, n_bootstrap: int = 1000, seed: int = 0) -> "pd.DataFrame":
    """The paper's report for a task (§4.3): gender classification — accuracy per protected
    group, Max/Min, DoB (:func:`finefcace.metrics.gender_task_report`); an attribute —
    accuracy, TPR, DEO, DEOdds across genders (:func:`finefcace.metrics.attribute_task_report`).
    Book: ``notebooks/05_evaluation.ipynb``."""
    from finefcace import metrics

    if target == "gender":
        return metrics.gender_task_report(predictions, n_bootstrap=n_bootstrap, seed=seed)
    return metrics.attribute_task_report({target: predictions}, protected="gender", n_bootstrap=n_bootstrap, seed=seed)


def paper_summaries_recomputed(tables: Iterable[str] = ("table2", "table5", "table9")) -> "pd.DataFrame":
    """Max/Min and DoB recomputed by :mod:`finefcace.metrics` from the group accuracies the
    paper prints, beside the values it prints (the check of ``spec/metrics.md``: sample
    standard deviation, ``ddof=1``). Book: ``notebooks/05_evaluation.ipynb``."""
    import pandas as pd

    from finefcace import metrics, paper_results

    rows = []
    for key in tables:
        values = paper_results.paper_values(key)
        for method, part in values.groupby("method", sort=False):
            accuracies = part.loc[part["metric"] == "accuracy", "value"].to_numpy(float)
            printed = dict(zip(part["metric"], part["value"]))
            rows.append({"table": key, "method": method, "groups": len(accuracies),
                         "Max/Min printed": printed.get("max_min_ratio"),
                         "Max/Min computed": round(metrics.max_min_ratio(accuracies), 3),
                         "DoB printed": printed.get("degree_of_bias"),
                         "DoB computed": round(metrics.degree_of_bias(accuracies), 2)})
    return pd.DataFrame(rows).set_index(["table", "method"])


def summary_columns(table: "pd.DataFrame") -> list:
    """The Max/Min, Overall and DoB columns of a ``paper_results.side_by_side`` gender table."""
    return [c for c in table.columns if (c[0] if isinstance(c, tuple) else c) in ("Max/Min", "Overall", "DoB")]


def our_rows(table: "pd.DataFrame", label: str) -> "pd.DataFrame":
    """Our rows of a side-by-side table, without the columns we have no value for (e.g. the
    paper's FairFace groups on synthetic data)."""
    ours = table.loc[[label]]
    filled = ours.apply(lambda column: column.map(lambda v: v not in ("", None) and v == v)).any()
    return ours.loc[:, filled]


def comparison_maps(model: Any, baseline: Any, images: Any) -> tuple[list[Any], Any, Any]:
    """The maps of the paper's Fig. 3 for a batch: each expert's normalised CAM
    Ω̃_n^norm, the overall Ω̃_oval^norm (FineFACE) and the baseline's CAM Ω̃_ori^norm (its
    last convolutional map, its predicted class), all at the input size.
    Book: ``notebooks/05_evaluation.ipynb``."""
    import torch

    from finefcace import attention

    size = tuple(images.shape[-2:])
    with torch.no_grad():
        cams = attention.class_activation_maps(model, model.eval()(images))
        _, baseline_cam = attention.baseline_class_activation_maps(baseline.eval(), images)
    experts = attention.attention_maps(cams, size)
    overall = attention.overall_attention_map(cams, size)
    return experts, overall, attention.attention_maps([baseline_cam], size)[0]


def evaluate_on(result: "TrainResult", table: str | Path, root: str | Path | None, split: str = "test") -> "pd.DataFrame":
    """Predictions of a run's best model on another dataset's table (cross-dataset tests,
    paper Tables 3-4), through :func:`finefcace.train.evaluate_run`."""
    from finefcace.train import evaluate_run

    return evaluate_run(result.run_dir, split=split, table=table, root=root, device=result.config.device)


def our_methods(table: "pd.DataFrame", label: str) -> "pd.DataFrame":
    """Our rows of a side-by-side attribute table (Table 6/7 layout), one row per method, for
    :func:`finefcace.plots.fairness_decomposition`."""
    import pandas as pd

    if isinstance(table.index, pd.MultiIndex) and label in table.index.get_level_values(0):
        return table.loc[label]
    return table.T.loc[label]


# ------------------------------------------------------------------------------ chapter 06: ablations
def split_loader(result: "TrainResult", *, split: str = "test", batch_size: int | None = None) -> Any:
    """An ordered DataLoader over ``split`` of the table a run was trained on (test transform)."""
    from finefcace import data

    table, root = run_table(result)
    resolved = result.config.resolved()
    dataset = data.FaceTableDataset(table, root, result.config.target, split=split, classes=result.classes,
                                    transform=data.test_transform(resolved["input_size"]))
    return data.make_loader(dataset, batch_size=batch_size or resolved["batch_size"], train=False)


def fusion_scores(model: Any, loader: Any, *, threshold: float = 0.5, pad: float = 0.1,
                  max_batches: int | None = None) -> dict[str, Any]:
    """Every head's logits on every test image, for both inference views (paper §3.3): the
    raw image and the overall region A_oval. One pass over ``loader``; every fusion subset is
    then a mean of some of these (:func:`fusion_table`). Returns ``{"raw": (H, N_img, K),
    "oval": (H, N_img, K), "heads": names, "y_true": (N_img,), "row_index": (N_img,),
    "oval_share": (N_img,)}`` with heads e_1..e_N, concat, and the share of each image A_oval's
    box keeps. Book: ``notebooks/06_ablations.ipynb``."""
    import torch

    from finefcace import attention

    device = next(model.parameters()).device
    model.eval()
    raw, oval, labels, rows, shares = [], [], [], [], []
    with torch.inference_mode():
        for index, (images, y, row_index) in enumerate(loader):
            if max_batches is not None and index >= max_batches:
                break
            images = images.to(device)
            first = model(images)
            # = attention.overall_region, spelled out to keep the box's share of the image
            total = attention.overall_attention_map(attention.class_activation_maps(model, first),
                                                    tuple(images.shape[-2:]))
            boxes = attention.boxes_from_maps(total, threshold, pad)
            second = model(attention.crop_and_resize(images, boxes))
            shares.append(((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).float().cpu() / total[0].numel())
            raw.append(torch.stack([*first.expert_logits, first.concat_logits]).float().cpu())
            oval.append(torch.stack([*second.expert_logits, second.concat_logits]).float().cpu())
            labels.append(torch.as_tensor(y))
            rows.append(torch.as_tensor(row_index))
    heads = [f"e_{n + 1}" for n in range(model.num_experts)] + ["concat"]
    return {"raw": torch.cat(raw, dim=1), "oval": torch.cat(oval, dim=1), "heads": heads,
            "y_true": torch.cat(labels).numpy(), "row_index": torch.cat(rows).numpy(),
            "oval_share": torch.cat(shares).numpy()}


#: The fusion subsets of the supplementary ablation (B): (views, heads).
FUSION_SUBSETS: tuple[tuple[str, str], ...] = (
    ("raw", "e_1"), ("raw", "e_2"), ("raw", "e_3"), ("raw", "concat"), ("raw", "all"),
    ("oval", "e_1"), ("oval", "e_2"), ("oval", "e_3"), ("oval", "concat"), ("oval", "all"),
    ("raw+oval", "concat"), ("raw+oval", "all"),
)


def fusion_predictions(scores: Mapping[str, Any], views: str, heads: str, combine: str = "logits") -> Any:
    """Predicted classes of one fusion subset: the mean of the chosen heads' logits (or
    probabilities) over the chosen views (``"raw"``, ``"oval"``, ``"raw+oval"``); heads
    ``"all"``, ``"experts"``, ``"concat"`` or ``"e_n"``. The paper's inference is
    ``("raw+oval", "all")``: the argmax of the mean of the 2(N+1) scores."""
    import torch

    names = scores["heads"]
    if heads == "all":
        chosen = list(range(len(names)))
    elif heads == "experts":
        chosen = list(range(len(names) - 1))
    elif heads in names:
        chosen = [names.index(heads)]
    else:
        raise ValueError(f"heads={heads!r}: use 'all', 'experts' or one of {names}")
    stacked = torch.cat([scores[v][chosen] for v in views.split("+")])
    if combine == "probabilities":
        stacked = stacked.softmax(dim=-1)
    return stacked.mean(dim=0).argmax(dim=-1).numpy()


def fusion_table(scores: Mapping[str, Any], table: "pd.DataFrame", *,
                 subsets: Iterable[tuple[str, str]] | None = None, n_bootstrap: int = 0) -> "pd.DataFrame":
    """Accuracy and fairness of each fusion subset on the same test images (supplementary B,
    inference only: the trained model is not changed). ``table``: the dataset table (for the
    protected columns). Book: ``notebooks/06_ablations.ipynb``."""
    from finefcace import metrics

    subsets = list(subsets) if subsets is not None else [
        s for s in FUSION_SUBSETS if s[1] in ("all", "concat", "experts") or s[1] in scores["heads"]]
    protected = table.loc[scores["row_index"], protected_columns(table)].reset_index(drop=True)
    reports = {}
    for views, heads in subsets:
        frame = protected.assign(y_true=scores["y_true"], y_pred=fusion_predictions(scores, views, heads))
        reports[(views, heads)] = metrics.gender_task_report(frame, n_bootstrap=n_bootstrap, seed=0)
    return summary_table(reports, names=("views", "heads"))


def summary_table(reports: Mapping[Any, "pd.DataFrame"], *, names: tuple[str, ...] = ("variant",)) -> "pd.DataFrame":
    """One row per gender-task report: overall accuracy, worst group, Max/Min and DoB, with
    "value [low, high]" text when the report has bootstrap intervals."""
    import pandas as pd

    metrics_shown = {"overall_accuracy": "overall accuracy (%)", "min_group_accuracy": "worst group (%)",
                     "max_min_ratio": "Max/Min", "degree_of_bias": "DoB"}
    rows = {}
    for key, report in reports.items():
        summary = report[report["group"] == "all"].set_index("metric")
        row = {}
        for metric, column in metrics_shown.items():
            value, low, high = summary.loc[metric, ["value", "ci_low", "ci_high"]]
            digits = 3 if metric == "max_min_ratio" else 1
            row[column] = f"{value:.{digits}f}" + (f" [{low:.{digits}f}, {high:.{digits}f}]" if low == low else "")
        rows[key] = row
    frame = pd.DataFrame(rows).T
    frame.index = pd.MultiIndex.from_tuples(frame.index, names=list(names)) if len(names) > 1 else \
        pd.Index(frame.index, name=names[0])
    return frame


def threshold_table(model: Any, loader: Any, table: "pd.DataFrame", thresholds: Iterable[float], *,
                    pad: float = 0.1, max_batches: int | None = None) -> "pd.DataFrame":
    """The threshold t of the attention masks (paper §3.2, t = 0.5), varied at inference only:
    the fused accuracy (raw + A_oval, all heads) and fairness at each t, and how much of the
    image A_oval keeps on average. Book: ``notebooks/06_ablations.ipynb``."""
    from finefcace import metrics

    reports, shares = {}, {}
    for t in thresholds:
        scores = fusion_scores(model, loader, threshold=t, pad=pad, max_batches=max_batches)
        protected = table.loc[scores["row_index"], protected_columns(table)].reset_index(drop=True)
        frame = protected.assign(y_true=scores["y_true"], y_pred=fusion_predictions(scores, "raw+oval", "all"))
        reports[t] = metrics.gender_task_report(frame, n_bootstrap=0)
        shares[t] = 100 * float(scores["oval_share"].mean())
    frame = summary_table(reports, names=("threshold t",))
    frame.insert(0, "A_oval keeps (% of image)", [f"{shares[t]:.1f}" for t in reports])
    return frame
