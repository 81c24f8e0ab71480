"""Experiment: FineFACE against the baseline on real photographs, at CPU scale.

Trains both methods on real UTKFace photographs (a seeded split stratified by race × gender,
byte-identical copies kept in one split and conflicting ones left out:
:func:`finefcace.sources.adapters.dataset_table`), ResNet-18 from scratch, for every input
size of ``--sizes`` and every seed of ``--seeds``, with the same budget for both (epochs,
early stopping, data, batch size), through the study engine
(:func:`finefcace.training.study.run_study`: train or load, bootstrap intervals, mean ± sd
over seeds, paired differences). Each run is tested on UTKFace's own test split — by race ×
gender (the paper's groups), by race and by gender — and, as cross-dataset test sets, on a
FairFace download and a CelebA download used whole. For each FineFACE run it also measures
the attention crop on the test split: the side of the deepest expert's map and the mean share
of the image kept by A_1..A_N and A_oval (paper §3.2).

Run (from the repository root; with the defaults the committed run took 98 min of wall time on one
CPU thread, the machine shared with other jobs — its caption says so)::

    python experiments/real_photographs.py --utkface data/utkface \\
        --fairface data/fairface --celeba data/celeba

Writes ``experiments/results/<name>.json`` (every run's reports) and
``experiments/results/<name>.md`` (the tables and the statement the book includes, generated
from the numbers, never typed); ``--report-only`` regenerates the Markdown from the JSON.
Runs live in ``--runs-root`` (a second call loads them). The input-size study of the same
photographs is ``experiments/resolution.py``, which trains through this script's ``run``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
import warnings
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from finefcace import outputs  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
METHODS = (("baseline", "Baseline"), ("finefcace", "FineFACE"))
SUMMARIES = ("overall_accuracy", "min_group_accuracy", "max_min_ratio", "degree_of_bias")
LABELS = {"overall_accuracy": "Overall ↑", "min_group_accuracy": "Worst group ↑", "max_min_ratio": "Max/Min ↓",
          "degree_of_bias": "DoB ↓"}


def arm_name(method: str, size: int) -> str:
    """``finefcace-64px``: the folder of an arm under the runs root (shared with the size study)."""
    return f"{method}-{size}px"


def parse_args(argv: list[str] | None, description: str | None = None, **defaults) -> argparse.Namespace:
    """The command line; ``defaults`` change the defaults (the input-size study's name, sizes, seeds)."""
    parser = argparse.ArgumentParser(description=description or __doc__.splitlines()[0])
    parser.add_argument("--utkface", type=Path, default=Path("data/utkface"),
                        help="UTKFace download (official layout): trained and tested on")
    parser.add_argument("--fairface", type=Path, default=Path("data/fairface"),
                        help="FairFace download, used whole as a cross-dataset test set ('none' to skip)")
    parser.add_argument("--celeba", type=Path, default=Path("data/celeba"),
                        help="CelebA download, used whole as a cross-dataset test set ('none' to skip)")
    parser.add_argument("--name", default="real_photographs", help="results file stem")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64], help="input sizes (px)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--patience", type=int, default=3, help="early stopping on validation accuracy")
    parser.add_argument("--max-train", type=int, default=5000,
                        help="training images kept (stratified subset of the training split; 0: all)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the train/val/test split (fixed)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples per interval")
    parser.add_argument("--runs-root", type=Path, default=Path("runs/real_photographs"))
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="where the JSON and Markdown go")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="share of each stratum in validation")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="share of each stratum in test")
    parser.add_argument("--jobs", type=int, default=1,
                        help="train the seeds in this many parallel processes of one CPU thread each")
    parser.add_argument(WORKER, action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(UNITS, nargs="+", default=None, help=argparse.SUPPRESS)  # a worker's arm@seed runs
    parser.add_argument("--train-only", action="store_true",
                        help="train (or load) the runs and write no results: a --jobs worker, or a machine without "
                             "the metrics packages (the GPU machine); --saved-runs reports them elsewhere")
    parser.add_argument("--saved-runs", action="store_true",
                        help="report runs trained elsewhere with --train-only, from the files in --runs-root "
                             "(predictions, summaries, measures; no model files needed)")
    parser.add_argument("--report-only", action="store_true", help="regenerate the Markdown from the JSON")
    parser.add_argument("--debug", action="store_true", help="on bad input, also print the traceback")
    parser.set_defaults(**defaults)
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------- checks
#: The datasets' names in messages, and where each option's download is described.
DATASET_LABELS = {"utkface": "UTKFace", "fairface": "FairFace", "celeba": "CelebA"}


def check_arguments(args: argparse.Namespace, script: str = "experiments/real_photographs.py", *,
                    one_size: bool = False) -> None:
    """Refuse, before anything is trained, every option that cannot work (a
    :class:`~finefcace.errors.UserError` naming the option and the fix): sizes below the
    smallest input (``finefcace.model.MIN_INPUT_SIZE``), repeated seeds or sizes, a budget below
    one epoch, split fractions outside (0, 1) or summing to 1 or more, a ``--results`` or
    ``--runs-root`` that is a file or cannot be written, ``--report-only`` before any results
    exist, and data folders that are not the download they name (``one_size``: the study
    compares arms at one input size). Shared by this script, ``resolution.py`` and ``controls.py``."""
    from finefcace.errors import UserError, check_output_folder
    from finefcace.model import MIN_INPUT_SIZE

    def refuse(message: str) -> None:
        raise UserError(message)

    if one_size and len(args.sizes) != 1:
        refuse(f"--sizes: give one input size (e.g. --sizes {args.sizes[0]}), got {args.sizes}: this study "
               "compares its arms at one size")
    small = [size for size in args.sizes if size < MIN_INPUT_SIZE]
    if small:
        refuse(f"--sizes: {small[0]} px is below the smallest input the models take ({MIN_INPUT_SIZE} px); "
               f"give sizes of at least {MIN_INPUT_SIZE}")
    for option, values in (("--sizes", args.sizes), ("--seeds", args.seeds)):
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            refuse(f"{option} names {repeated[0]} more than once ({' '.join(map(str, values))}); give each once")
    for option, value, least in (("--epochs", args.epochs, 1), ("--patience", args.patience, 1),
                                 ("--batch-size", args.batch_size, 2), ("--jobs", args.jobs, 1),
                                 ("--max-train", args.max_train, 0), ("--bootstrap", args.bootstrap, 0)):
        if value < least:
            refuse(f"{option} must be at least {least}, got {value}")
    for option, value in (("--val-fraction", args.val_fraction), ("--test-fraction", args.test_fraction)):
        if not 0.0 < value < 1.0:
            refuse(f"{option} must be between 0 and 1 (a share of each race x gender group), got {value}")
    if args.val_fraction + args.test_fraction >= 1.0:
        refuse(f"--val-fraction {args.val_fraction} and --test-fraction {args.test_fraction} leave nothing to train "
               "on: their sum must be below 1")
    if args.saved_runs and args.train_only:
        refuse("--saved-runs reports runs trained elsewhere and --train-only writes no report: give one of them")
    reports = not (args.train_only or args.worker)
    if reports:
        check_output_folder(args.results, option="--results")
    results_file = args.results / f"{args.name}.json"
    if args.report_only:
        if not results_file.is_file():
            refuse(f"--report-only: there are no results to report yet ({results_file} does not exist); run the "
                   f"study first, which writes them: {regenerate_command(sys.argv[1:], script)}")
        return
    check_output_folder(args.runs_root, option="--runs-root")
    if args.worker:
        return  # its parent checked the data and wrote the tables
    if args.saved_runs:
        written_tables(args)
        return
    check_download("utkface", args.utkface, "seeded")
    for name in dataset_names(args)[1:]:
        check_download(name, getattr(args, name), "test")


def check_download(name: str, root: Path, splits: str) -> None:
    """The download ``root`` given as ``--<name>`` holds the dataset in its official layout:
    its labels are read (no image is opened) and at least one photograph is listed."""
    from finefcace.errors import UserError
    from finefcace.sources.adapters import adapter_table

    label, option = DATASET_LABELS[name], f"--{name}"
    skip = "" if name == "utkface" else f", or --{name} none to leave it out"
    if not root.is_dir():
        raise UserError(f"{option} {root} is not a folder; point it at the {label} download in its official layout "
                        f"(README: Where to put the real datasets){skip}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # skipped names are reported where the tables are made
            table = adapter_table(name, root, splits=splits, check_images=False)
    except (OSError, ValueError) as error:
        raise UserError(f"{option} {root} is not a {label} download in its official layout ({error}); point it "
                        f"at the folder as the publisher ships it (README: Where to put the real datasets){skip}") \
            from None
    if table.empty:
        raise UserError(f"{option} {root} holds no {label} photographs the adapter can label; point it at the "
                        f"{label} download (README: Where to put the real datasets){skip}")


# ---------------------------------------------------------------------------- data
def dataset_names(args: argparse.Namespace) -> list[str]:
    """UTKFace (trained and tested on), then the cross-dataset sets not skipped with ``none``."""
    return ["utkface", *(name for name in ("fairface", "celeba") if str(getattr(args, name)).lower() != "none")]


def make_tables(args: argparse.Namespace) -> tuple[dict[str, str], dict]:
    """The training table (UTKFace, seeded split) and the cross-dataset tables (whole
    datasets), written under ``<runs_root>/tables``; and what preparing them found."""
    from finefcace.sources.adapters import dataset_table
    from finefcace.sources.duplicates import straddling_groups
    from finefcace.sources.table import save_table

    folder = args.runs_root / "tables"
    tables, notes = {}, {}
    sources = {"utkface": (args.utkface, {"splits": "seeded", "seed": args.split_seed, "target": "gender",
                                          "max_train": args.max_train or None, "val_fraction": args.val_fraction,
                                          "test_fraction": args.test_fraction})}
    sources.update({name: (getattr(args, name), {"splits": "test"}) for name in dataset_names(args)[1:]})
    for name, (root, options) in sources.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            table = dataset_table(name, root, **options)
        path = save_table(table, folder / f"{name}.csv")
        tables[name] = str(path)
        preparation = table.attrs["preparation"]
        notes[name] = {"rows": len(table), "rows_per_split": {k: int(v) for k, v in table["split"].value_counts().items()},
                       "duplicates": duplicate_summary(preparation["duplicates"]),
                       "groups_in_two_splits": len(straddling_groups(table)),
                       "skipped_names": len(table.attrs.get("skipped", [])),
                       "warnings": [w.category.__name__ for w in caught]}  # counts only: no file names kept
        if "train_rows_before_limit" in preparation:
            notes[name]["train_rows_before_limit"] = preparation["train_rows_before_limit"]
    outputs.write_json(folder / NOTES_FILE, notes)  # for --saved-runs, elsewhere
    return tables, notes


def duplicate_summary(record: dict) -> str:
    """The duplicate check in counts (file names, which carry UTKFace's labels, are left out)."""
    if not record["groups"]:
        return "no byte-identical images"
    columns = ", ".join(f"{c} {n}" for c, n in record["conflicting_by_column"].items())
    text = (f"{record['groups']} groups of byte-identical images ({record['files_in_groups']} files), "
            f"{record['conflicting']} of them with conflicting labels")
    if record["conflicting"]:
        text += f" (differing in {columns}), whose {record['rows_left_out']} files were left out"
    return text


#: A worker of ``--jobs``: trains its seeds into the runs root from the tables there, writes no results.
WORKER = "--worker"
#: A worker's share when the runs are dealt by cost (:func:`deal_runs`): ``arm@seed`` words.
UNITS = "--units"
#: What making the tables found (the duplicate check, split sizes), beside the tables.
NOTES_FILE = "notes.json"

#: The options naming data folders: the command in the caption shows placeholders for them.
DATA_OPTIONS = {"--utkface": "<UTKFace folder>", "--fairface": "<FairFace folder>", "--celeba": "<CelebA folder>"}


def regenerate_command(argv: list[str], script: str = "experiments/real_photographs.py") -> str:
    """The command line (``python <script> ...``) that regenerates the results, data folders as
    placeholders."""
    words, skip = [], False
    for i, word in enumerate(argv):
        if skip:
            skip = False
            continue
        if word in ("--report-only", "--train-only", WORKER, "--saved-runs", "--debug"):
            continue
        option, _, value = word.partition("=")
        if word in DATA_OPTIONS and i + 1 < len(argv):
            words += [word, "none" if argv[i + 1].lower() == "none" else DATA_OPTIONS[word]]
            skip = True
        elif option in DATA_OPTIONS:
            words += [option, "none" if value.lower() == "none" else DATA_OPTIONS[option]]
        else:
            words.append(shlex.quote(word))
    return f"python {script} " + " ".join(words)


# ---------------------------------------------------------------------------- attention crop
def crop_measures(config, run_dir: Path) -> dict[str, float]:
    """The attention crop of a FineFACE run on its test split (§3.2): the side of the deepest
    expert's map, and the mean share of the image each region keeps (A_1..A_N, A_oval; a placebo
    run's boxes keep the same shares, at random places)."""
    import torch

    from finefcace import attention
    from finefcace.model import FineFACE
    from finefcace.sources.dataset import FaceTableDataset, make_loader
    from finefcace.sources.table import load_table
    from finefcace.sources.transforms import test_transform
    from finefcace.training.loaders import cache_folder, decoded_images
    from finefcace.training.run_directory import load_best_model

    from finefcace.training.distributed import resolve_device

    device = resolve_device(config.device)
    model, config, classes, _ = load_best_model(run_dir, device)
    if not isinstance(model, FineFACE) or config.regions == "none":  # no crop to measure
        return {}
    resolved = config.resolved()
    size = resolved["input_size"]
    table = load_table(config.table)
    dataset = FaceTableDataset(table, config.root, config.target, split="test", classes=classes,
                               transform=test_transform(size))
    dataset.images = decoded_images(dataset.table, Path(config.root), size, cache_folder(config.image_cache, config.table))
    shares: list[list[torch.Tensor]] = []
    deepest = 0
    with torch.inference_mode():
        for images, _, _ in make_loader(dataset, batch_size=64, train=False, workers=0):
            images = images.to(device)
            output = model(images)
            deepest = int(output.maps[-1].shape[-1])
            cams = attention.class_activation_maps(model, output)
            maps = [*attention.attention_maps(cams, (size, size)), attention.overall_attention_map(cams, (size, size))]
            shares.append([attention.box_fractions(attention.boxes_from_maps(m, resolved["threshold"], resolved["pad"]),
                                                   (size, size)).cpu() for m in maps])
    result = {"deepest_map_side": float(deepest)}
    for j in range(len(shares[0])):
        name = "A_oval" if j == len(shares[0]) - 1 else f"A_{j + 1}"
        result[f"crop_share_{name}"] = float(100 * torch.cat([batch[j] for batch in shares]).mean())
    return result


# ---------------------------------------------------------------------------- run
def written_tables(args: argparse.Namespace) -> tuple[dict[str, str], dict]:
    """The tables, and what preparing them found, written under ``<runs_root>/tables`` by an
    earlier call (a ``--jobs`` worker, ``--saved-runs``)."""
    from finefcace.errors import UserError

    folder = args.runs_root / "tables"
    if not (folder / "utkface.csv").is_file():
        raise UserError(f"no tables under {folder}: run the study there first (with --train-only on the machine "
                        f"that trains), or copy its runs folder here whole")
    tables = {name: str(folder / f"{name}.csv") for name in dataset_names(args) if (folder / f"{name}.csv").is_file()}
    notes = json.loads((folder / NOTES_FILE).read_text()) if (folder / NOTES_FILE).is_file() else {}
    return tables, notes


def deal_runs(costs: dict[tuple[str, int], float], jobs: int) -> list[list[tuple[str, int]]]:
    """Runs (arm, seed) → relative cost, dealt to ``jobs`` workers so their summed costs are as
    even as a greedy deal makes them (most expensive first, each to the least loaded worker)."""
    shares: list[list[tuple[str, int]]] = [[] for _ in range(min(jobs, len(costs)))]
    loads = [0.0] * len(shares)
    for unit in sorted(costs, key=lambda u: -costs[u]):
        least = loads.index(min(loads))
        shares[least].append(unit)
        loads[least] += costs[unit]
    return shares


def train_in_parallel(args: argparse.Namespace, script: str, costs: dict[tuple[str, int], float] | None = None) -> None:
    """``--jobs``: the runs shared among that many worker processes of this script, one CPU
    thread each, which train into the runs root; the caller then loads every run. Without
    ``costs`` the seeds are dealt round-robin (every arm of a seed to one worker); with them,
    each (arm, seed) run goes where :func:`deal_runs` puts it."""
    if costs is None:
        kind, shares = "seeds", [args.seeds[i::args.jobs] for i in range(min(args.jobs, len(args.seeds)))]
        words = [["--seeds", *map(str, share)] for share in shares]
    else:
        kind, shares = "runs", [[f"{arm}@{seed}" for arm, seed in share] for share in deal_runs(costs, args.jobs)]
        words = [[UNITS, *share] for share in shares]
    path = Path(__file__).resolve().parents[1] / script
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    workers = [subprocess.Popen([sys.executable, str(path), *sys.argv[1:], *share, "--jobs", "1", WORKER],
                                env=environment) for share in words]
    failed = [(share, worker.wait()) for share, worker in zip(shares, workers)]
    failed = [(share, status) for share, status in failed if status != 0]
    if failed:
        raise SystemExit(f"{script}: the workers for {kind} {[s for s, _ in failed]} failed (exit status "
                         f"{[s for _, s in failed]}; their messages are above). Finished runs stay in {args.runs_root}: "
                         f"run the same command again to train only what is missing.")


def base_config(args: argparse.Namespace, tables: dict[str, str]) -> dict:
    """The configuration every arm starts from: ResNet-18 from scratch on the UTKFace table, the
    budget of the command line."""
    return {
        "table": tables["utkface"], "root": str(args.utkface), "target": "gender", "backbone": "resnet18",
        "weights": None, "input_size": args.sizes[0], "batch_size": args.batch_size, "epochs": args.epochs, "patience": args.patience,
        "overrides": {"descriptor_dim": 256, "head_lr": 0.01, "backbone_lr": 0.01}, "device": args.device,
        "progress": False, "image_cache": str(args.runs_root / "image_cache"),
    }


def method_arms(args: argparse.Namespace) -> list:
    """FineFACE and the baseline at every size of ``--sizes``."""
    from finefcace.training.study import Arm

    return [Arm(arm_name(method, size), {"method": method, "input_size": size}, f"{label}, {size} px")
            for size in args.sizes for method, label in METHODS]


def run(args: argparse.Namespace, script: str = "experiments/real_photographs.py", arms: list | None = None,
        costs: dict[str, float] | None = None) -> Path | None:
    """Train or load every arm × seed (:func:`run_study`; default arms: every size × method) and
    write the results JSON; ``script`` is the command the caption names. With ``--jobs`` the
    runs train in parallel worker processes first (the wall time covers them): the seeds dealt
    round-robin, or, given ``costs`` (arm → relative training cost), every run dealt by cost;
    with ``--train-only`` the runs are trained and nothing is reported (:func:`train_study_runs`);
    with ``--saved-runs`` runs trained elsewhere are reported from their files."""
    from finefcace.training.study import CrossDataset, run_study, train_study_runs

    started = time.perf_counter()
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    tables, notes = written_tables(args) if args.saved_runs or args.worker else make_tables(args)
    base = base_config(args, tables)
    arms = arms if arms is not None else method_arms(args)
    if args.jobs > 1 and not (args.saved_runs or args.worker):
        train_in_parallel(args, script, None if costs is None else
                          {(arm.name, seed): costs[arm.name] for arm in arms for seed in args.seeds})
    cross = {name: CrossDataset(tables[name], str(getattr(args, name))) for name in ("fairface", "celeba")
             if name in tables}
    if args.train_only or args.worker:
        units = [(arm, seed) for arm in arms for seed in args.seeds]
        if args.units:
            units = [(arm, seed) for arm, seed in units if f"{arm.name}@{seed}" in args.units]
        for arm, seed in units:
            train_study_runs(args.name, base, [arm], [seed], args.runs_root, cross_datasets=cross, measure=crop_measures)
        return None
    command = regenerate_command(sys.argv[1:], script)
    results = run_study(args.name, base, arms, args.seeds, args.runs_root, cross_datasets=cross,
                        n_bootstrap=args.bootstrap, measure=crop_measures, saved_runs=args.saved_runs,
                        groupings={"race": ["race"], "gender": ["gender"]}, command=command)
    results.meta.update(tables=notes, sizes=args.sizes, max_train=args.max_train, split_seed=args.split_seed, jobs=args.jobs,
                        total_wall_seconds=time.perf_counter() - started,
                        load_average=[round(load_before, 1),
                                      round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None])
    # the record names the data folders by role, not by where they lay on the machine that ran it
    results.meta["base_config"]["root"] = DATA_OPTIONS["--utkface"]
    for name, cross_dataset in results.meta["cross_datasets"].items():
        cross_dataset["root"] = DATA_OPTIONS[f"--{name}"]
    path = results.to_json(args.results / f"{args.name}.json")
    print(f"wrote {path}")
    return path


# ---------------------------------------------------------------------------- report
def metric_digits(metric: str) -> int:
    """Decimals a summary is printed with: 3 for the Max/Min ratio, 1 for points."""
    return 3 if metric == "max_min_ratio" else 1


def _value(row: pd.Series | None, metric: str) -> str:
    if row is None or not np.isfinite(row["mean"]):
        return "—"
    digits = metric_digits(metric)
    spread = f" ± {row['std']:.{digits}f}" if np.isfinite(row["std"]) else ""
    return f"{row['mean']:.{digits}f}{spread}"


def _interval(value: float, low: float, high: float, metric: str) -> str:
    digits = metric_digits(metric)
    if not np.isfinite(value):
        return "—"
    if np.isfinite(low) and np.isfinite(high):
        return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
    return f"{value:.{digits}f}"


def summary_table(results, test_set: str) -> list[str]:
    """Mean ± sd over seeds of the summaries, one row per arm."""
    summary = results.summary(test_set, SUMMARIES)
    descriptions = {a["name"]: a["description"] for a in results.meta["arms"]}
    lines = ["| Method | " + " | ".join(LABELS[m] for m in SUMMARIES) + " | Epochs run | Training time per run |",
             "|---|" + "---|" * (len(SUMMARIES) + 2)]
    for arm in results.arms:
        part = summary[summary["arm"] == arm].set_index("metric")
        runs = results.runs[results.runs["arm"] == arm]
        cells = [_value(part.loc[m] if m in part.index else None, m) for m in SUMMARIES]
        lines.append(f"| {descriptions[arm]} | " + " | ".join(cells) +
                     f" | {runs['epochs_run'].mean():.1f} | {runs['train_seconds'].mean() / 60:.1f} min |")
    return lines


def per_seed_table(results, test_set: str) -> list[str]:
    """Each run's summaries with their 95 % bootstrap intervals (over test images)."""
    rows = results.reports[(results.reports["test_set"] == test_set) & (results.reports["group"] == "all")]
    descriptions = {a["name"]: a["description"] for a in results.meta["arms"]}
    lines = ["| Method | Seed | " + " | ".join(LABELS[m] for m in SUMMARIES) + " |", "|---|---|" + "---|" * len(SUMMARIES)]
    for arm in results.arms:
        for seed in results.meta["seeds"]:
            part = rows[(rows["arm"] == arm) & (rows["seed"] == seed)].set_index("metric")
            cells = [_interval(part.loc[m, "value"], part.loc[m, "ci_low"], part.loc[m, "ci_high"], m)
                     if m in part.index else "—" for m in SUMMARIES]
            lines.append(f"| {descriptions[arm]} | {seed} | " + " | ".join(cells) + " |")
    return lines


def group_table(results, test_set: str) -> list[str]:
    """Accuracy of every group (mean ± sd over seeds; test images per group), one column per arm."""
    groups = results.group_summary(test_set)
    sizes = results.reports[(results.reports["test_set"] == test_set) & (results.reports["metric"] == "accuracy")
                            & (results.reports["group"] != "all")].groupby("group", sort=False)["n"].first()
    descriptions = {a["name"]: a["description"] for a in results.meta["arms"]}
    lines = ["| Group | Test images | " + " | ".join(descriptions[a] for a in results.arms) + " |",
             "|---|---|" + "---|" * len(results.arms)]
    for group in sizes.index:
        cells = []
        for arm in results.arms:
            row = groups[(groups["arm"] == arm) & (groups["group"] == group)]
            cells.append(_value(row.iloc[0], "accuracy") if len(row) else "—")
        lines.append(f"| {group} | {int(sizes[group])} | " + " | ".join(cells) + " |")
    return lines


def undefined_difference(row: pd.Series, metric: str) -> str:
    """Words for a paired difference that is not a number, instead of ``+inf`` or ``nan``: no
    paired seed; or a Max/Min ratio that is infinite because a group's accuracy was 0 in some
    seed (``arm`` minus ``reference``: +inf when the arm had such a seed, -inf when the reference
    had, NaN when both had)."""
    if not row["n_seeds"]:
        return "no seed run by both"
    if metric != "max_min_ratio":
        return "not a number"
    arm, reference = (arm_label(row[key]) for key in ("arm", "reference"))
    who = arm if row["mean"] > 0 else reference if row["mean"] < 0 else f"{arm} and {reference}"
    return f"undefined: {who} left a group at 0 % in some seed (Max/Min infinite)"


def arm_label(arm: str) -> str:
    """An arm's name in a sentence: ``finefcace-64px`` (:func:`arm_name`) -> ``FineFACE``; an arm
    named otherwise, as it is."""
    method, _, size = str(arm).rpartition("-")
    known = {"finefcace": "FineFACE", "baseline": "the baseline"}
    return known[method] if method in known and size.removesuffix("px").isdigit() else str(arm)


def difference_cells(diff: pd.DataFrame) -> list[str]:
    """One table cell per summary of paired differences (indexed by metric): the mean over seeds
    and its t interval (``+4.2 [-4.4, +12.9]``), in words where undefined
    (:func:`undefined_difference`)."""
    cells = []
    for metric in SUMMARIES:
        row, digits = diff.loc[metric], metric_digits(metric)
        interval = (f" [{row['ci_low']:+.{digits}f}, {row['ci_high']:+.{digits}f}]"
                    if np.isfinite(row["ci_low"]) else "")
        cells.append(f"{row['mean']:+.{digits}f}{interval}" if np.isfinite(row["mean"])
                     else undefined_difference(row, metric))
    return cells


def difference_rows(results, test_set: str, size: int):
    diff = results.differences(arm_name("finefcace", size), arm_name("baseline", size), test_set, SUMMARIES)
    return diff.set_index("metric")


def difference_table(results, test_sets: list[tuple[str, str]], size: int) -> list[str]:
    lines = ["| Test set | Metric | FineFACE − baseline (mean over seeds) | 95 % interval (t, over seeds) | "
             "Seeds favouring FineFACE |", "|---|---|---|---|---|"]
    for test_set, label in test_sets:
        diff = difference_rows(results, test_set, size)
        for metric in SUMMARIES:
            row = diff.loc[metric]
            digits = metric_digits(metric)
            interval = (f"[{row['ci_low']:+.{digits}f}, {row['ci_high']:+.{digits}f}]"
                        if np.isfinite(row["ci_low"]) else "—")
            mean = f"{row['mean']:+.{digits}f}" if np.isfinite(row["mean"]) else undefined_difference(row, metric)
            lines.append(f"| {label} | {LABELS[metric]} | {mean} | {interval} | "
                         f"{row['seeds_favouring_arm']} of {row['n_seeds']} |")
    return lines


def paper_table() -> list[str]:
    """The paper's Table 3 UTKFace rows (trained on FairFace, ResNet-50 ImageNet, 448 px)."""
    from finefcace.course.paper_results import paper_values

    values = paper_values("table3")
    values = values[values["dataset"] == "UTKFace"]
    lines = ["| Paper, Table 3 (UTKFace) | " + " | ".join(LABELS[m] for m in ("overall_accuracy", "max_min_ratio",
                                                                                  "degree_of_bias")) + " | Worst group |",
             "|---|---|---|---|---|"]
    for method, part in values.groupby("method", sort=False):
        printed = dict(zip(part["metric"], part["value"]))
        accuracies = part[part["metric"] == "accuracy"]
        worst = accuracies.loc[accuracies["value"].idxmin()]
        lines.append(f"| {method} | {printed['overall_accuracy']:.1f} | {printed['max_min_ratio']:.2f} | "
                     f"{printed['degree_of_bias']:.1f} | {worst['value']:.1f} ({worst['race']} / {worst['gender']}) |")
    return lines


def crop_table(results) -> list[str]:
    runs = results.runs
    share_columns = sorted([c for c in runs.columns if c.startswith("crop_share_")],
                           key=lambda c: (c.endswith("A_oval"), c))
    if not share_columns:
        return []
    lines = ["| Method | Deepest map | " + " | ".join(c.replace("crop_share_", "") + " (% of image)"
                                                    for c in share_columns) + " |",
             "|---|---|" + "---|" * len(share_columns)]
    descriptions = {a["name"]: a["description"] for a in results.meta["arms"]}
    for arm in results.arms:
        part = runs[(runs["arm"] == arm)]
        if part[share_columns[0]].isna().all():
            continue
        side = int(part["deepest_map_side"].iloc[0])
        cells = [f"{part[c].mean():.1f} ± {part[c].std(ddof=1):.1f}" if len(part) > 1 else f"{part[c].mean():.1f}"
                 for c in share_columns]
        lines.append(f"| {descriptions[arm]} | {side}×{side} | " + " | ".join(cells) + " |")
    return lines


_PLAIN = {"overall_accuracy": "overall accuracy", "min_group_accuracy": "worst-group accuracy",
          "max_min_ratio": "Max/Min", "degree_of_bias": "DoB"}


def _clear(row: pd.Series) -> bool:
    """Does the interval over seeds of a paired difference exclude zero?"""
    return bool(np.isfinite(row["ci_low"]) and np.isfinite(row["ci_high"]) and (row["ci_low"] > 0 or row["ci_high"] < 0))


def _better(row: pd.Series) -> bool:
    return bool(row["mean"] < 0) if not row["higher_is_better"] else bool(row["mean"] > 0)


def _direction(metric: str, row: pd.Series) -> str:
    """One clause: how FineFACE's ``metric`` differed from the baseline's, and whether the
    interval over seeds excludes zero."""
    name, mean = _PLAIN[metric], row["mean"]
    if not np.isfinite(mean):
        return f"{name} undefined in some run (a group at 0 % makes Max/Min infinite)"
    digits, unit = (3, "") if metric == "max_min_ratio" else (1, " points")
    if round(abs(mean), digits) == 0:
        return f"{name} equal"
    wording = "higher" if mean > 0 else "lower"
    verdict = "better" if _better(row) else "worse"
    certainty = ("the interval over seeds excludes zero" if _clear(row)
                 else "within the seed-to-seed spread: the interval over seeds includes zero")
    return f"{name} {abs(mean):.{digits}f}{unit} {wording} ({verdict}; {certainty})"


def statement(results, size: int) -> str:
    """The plain-words result, generated from the paired differences on the UTKFace test split."""
    diff = difference_rows(results, "test", size)
    n = int(diff.loc["overall_accuracy", "n_seeds"])
    clauses = [_direction(m, diff.loc[m]) for m in SUMMARIES]
    clear = [m for m in SUMMARIES if _clear(diff.loc[m])]
    better = {m: _better(diff.loc[m]) for m in clear}
    if not clear:
        verdict = ("None of these differences is distinguishable from the variation between seeds: at this scale "
                   "the measurement does not show FineFACE more accurate or fairer than the baseline, nor less.")
    elif all(better.values()):
        verdict = (f"Where the seeds agree ({', '.join(_PLAIN[m] for m in clear)}), FineFACE is the better of the "
                   f"two at this scale.")
    elif not any(better.values()):
        verdict = (f"Where the seeds agree ({', '.join(_PLAIN[m] for m in clear)}), FineFACE is the worse of the "
                   f"two at this scale: the paper's gains did not appear here.")
    else:
        verdict = (f"The seeds agree on {', '.join(_PLAIN[m] for m in clear)}, which point in different directions: "
                   f"a trade-off, not a clear gain.")
    favour = {m: int(diff.loc[m, "seeds_favouring_arm"]) for m in ("overall_accuracy", "degree_of_bias")}
    return (f"On UTKFace's test split at {size} px, over {n} seeds, FineFACE against the baseline: "
            + "; ".join(clauses) + f". Seeds in which FineFACE did better: {favour['overall_accuracy']} of {n} on "
            f"overall accuracy, {favour['degree_of_bias']} of {n} on DoB. " + verdict)


def _jobs_note(jobs: int) -> str:
    """How the runs shared the machine, when ``--jobs`` trained seeds in parallel."""
    return f" (the seeds trained in {jobs} parallel processes of one thread each)" if jobs > 1 else ""


def _load_note(load: list | None) -> str:
    """The machine's load average when the experiment started and ended (other work shares the cores)."""
    if not load or load[0] is None:
        return ""
    return f" (load average {load[0]} at the start, {load[1]} at the end, on {os.cpu_count()} cores)"


def _version_note(meta: dict) -> str:
    """`` Code: commit 1a2b3c4d.``: the code that made the results (older results did not record it)."""
    version = meta.get("code_version")
    if not version:
        return ""
    commit, _, changed = version.partition("+")
    return f" Code: commit `{commit[:10]}`{' with uncommitted changes' if changed else ''}."


def provenance(meta: dict, runs: pd.DataFrame) -> str:
    """The paragraph saying what produced a study's numbers: the photographs, the duplicate
    check, the split, the subset trained on, the model and budget, seeds, hardware, times and
    the command that regenerates them (from the results' ``meta`` and ``runs``)."""
    from finefcace.training.study import hardware_in_words

    utk = meta["tables"].get("utkface")
    if utk is None:  # runs reported from their files without the tables' notes (an older copy)
        return (f"**What produced these numbers.** Real UTKFace photographs (what the duplicate check and the split "
                f"found was not saved with these runs). {meta['model']}. Seeds {meta['seeds']}. {hardware_in_words(meta['hardware'])}; "
                f"{meta['date'][:10]}. Regenerate: `{meta['command']}`.")
    train_rows = utk["rows_per_split"].get("train", 0)
    subsample = (f"a stratified subset of {train_rows:,} of the {utk['train_rows_before_limit']:,} training images"
                 if "train_rows_before_limit" in utk and utk["train_rows_before_limit"] > train_rows
                 else f"all {train_rows:,} training images")
    return (
        f"**What produced these numbers.** Real UTKFace photographs (200 × 200 aligned crops; the duplicate check: "
        f"{utk['duplicates']}), split train / val / test by a seeded race × gender stratified split "
        f"(seed {meta['split_seed']}; {utk['groups_in_two_splits']} content hashes in two splits); trained on "
        f"{subsample}, validated on {utk['rows_per_split'].get('val', 0):,} and tested on "
        f"{utk['rows_per_split'].get('test', 0):,}. "
        f"{meta['model']}; learning rates 0.01, descriptor size 256, FineFACE and the baseline with the same "
        f"data, epochs, early stopping (patience {meta['base_config']['patience']} on validation accuracy) and "
        f"batch size. Seeds {meta['seeds']} (the seed sets initialisation and data order; the split is fixed). "
        f"{hardware_in_words(meta['hardware'])}{_jobs_note(meta.get('jobs', 1))}; {meta['date'][:10]}; training time summed over the "
        f"{len(runs)} runs {runs['train_seconds'].sum() / 60:.0f} min; the call that wrote these results took "
        f"{meta.get('total_wall_seconds', meta['wall_seconds']) / 60:.0f} min of wall time"
        f"{_load_note(meta.get('load_average'))}; runs that an earlier call of the same command finished are "
        f"loaded, not retrained.{_version_note(meta)} "
        f"Regenerate: `{meta['command']}`.")


def report(args: argparse.Namespace) -> Path:
    from finefcace.training.study import StudyResults, grouped_name

    results = StudyResults.from_json(args.results / f"{args.name}.json")
    meta = results.meta
    size = meta["sizes"][0]
    cross = [name for name in ("fairface", "celeba") if name in meta["tables"]]
    test_sets = [("test", "UTKFace test")] + [(name, {"fairface": "FairFace (whole)", "celeba": "CelebA (whole)"}[name])
                                              for name in cross]
    lines = [
        f"<!-- Generated by experiments/real_photographs.py from {args.name}.json; do not edit by hand. -->",
        "",
        provenance(meta, results.runs),
        "",
        "**The result, in plain words (generated from the numbers below).** " + statement(results, size),
        "",
        "UTKFace test split, groups race × gender (the paper's 10 groups): mean ± standard deviation over seeds.",
        "",
        *summary_table(results, "test"),
        "",
        f"Every run with 95 % bootstrap intervals over the test images ({meta['n_bootstrap']:,} resamples, "
        f"stratified by group):",
        "",
        *per_seed_table(results, "test"),
        "",
        "FineFACE minus the baseline, seed by seed (the same seed: the same initialisation and data order):",
        "",
        *difference_table(results, test_sets, size),
        "",
        "Accuracy per race × gender group, per race and per gender on UTKFace's test split (mean ± sd over seeds):",
        "",
        *group_table(results, "test"),
        "",
        *group_table(results, grouped_name("test", "race")),
        "",
        *group_table(results, grouped_name("test", "gender")),
        "",
    ]
    for name in cross:
        table = meta["tables"][name]
        label = {"fairface": "FairFace", "celeba": "CelebA"}[name]
        lines += [f"Cross-dataset: the {label} download used whole as a test set ({table['rows']:,} images, never "
                  f"trained on; {table['duplicates']}):", "", *summary_table(results, name), ""]
        if name == "fairface":
            lines += ["FairFace accuracy per race (mean ± sd over seeds):", "",
                      *group_table(results, grouped_name(name, "race")), ""]
    crops = crop_table(results)
    if crops:
        lines += ["The attention crop of each FineFACE run on UTKFace's test split (paper §3.2): the side of the "
                  "deepest expert's map, and the share of the image each region keeps (mean over test images; "
                  "± sd over seeds):", "", *crops, ""]
    lines += ["For comparison, the paper's Table 3 (trained on FairFace, ResNet-50 pretrained on ImageNet, 448 px, "
              "one run each; UTKFace is a cross-dataset test set there):", "", *paper_table(), ""]
    path = outputs.write_text(args.results / f"{args.name}.md", "\n".join(lines))
    print(f"wrote {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_arguments(args)
    if not args.report_only:
        run(args)
    if not (args.train_only or args.worker):
        report(args)
    return 0


if __name__ == "__main__":
    from finefcace.errors import run_script

    sys.exit(run_script(main))
