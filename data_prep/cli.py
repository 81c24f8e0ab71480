"""The ``data_prep`` command line: check a download, write its table; render synthetic faces.

Exit status 0 when the table was written, 1 when the download has unusable images (missing
or unreadable) and ``--drop-bad`` was not given, or its counts differ from the release under
``--strict`` (the problems are listed in ``<out>/<dataset>_problems.csv``; no table is
written), 2 on bad input — an option, a label file, a folder — reported as one line
``error: ...`` naming the file, row or option and the fix (:mod:`finefcace.errors`; ``--debug``
adds the traceback), with nothing written.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

REAL_DATASETS = ("fairface", "utkface", "lfwa", "celeba")
SPLIT_CHOICES = ("official", "seeded", "test")

_EPILOG = """\
images: every image is checked before a table is written (existence; with --decode, decoding).
  Unusable images (missing; unreadable: truncated, corrupt, empty or not an image; too_large: above
  finefcace.sources.images.MAX_IMAGE_PIXELS = 40 megapixels, refused before decoding; too_small: below
  8 px) stop the command with exit 1 and no table, unless --drop-bad leaves them out. Images that are
  read fine but converted (CMYK, grayscale, ...), rotated (EXIF orientation, applied), misnamed (a PNG
  named .jpg) or tiny (< 32 px) are only reported. Every problem is listed in <out>/<dataset>_problems.csv,
  written on every run that looks at the images.
training: a run never meets an unreadable image mid-epoch: every image it will read is decoded once
  before the first batch (the decoded-image cache), and an image that fails stops the run there,
  naming each file and this command (policy: refuse before training).
duplicates: byte-identical files are grouped by content hash; groups whose labels disagree are
  reported and left out (--duplicates keep_one keeps one copy); copies that agree stay in one split.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m data_prep",
        description="Check a face dataset download in its official layout and write its table "
                    "(finefcace.sources.adapters), or render the synthetic faces (finefcace.sources.synthetic).",
    )
    commands = parser.add_subparsers(dest="dataset", required=True, metavar="dataset")
    for name, help_text in (
        ("fairface", "FairFace: fairface_label_{train,val}.csv + fairface-img-margin025-trainval/"),
        ("utkface", "UTKFace: UTKFace/<age>_<gender>_<race>_<date>.jpg.chip.jpg"),
        ("lfwa", "LFWA+: lfw_att_73.mat, indices_train_test.mat, lfw/<Name>/<Name>_NNNN.jpg"),
        ("celeba", "CelebA: list_attr_celeba.txt, list_eval_partition.txt, img_align_celeba/"),
    ):
        command = commands.add_parser(name, help=help_text, description=help_text, epilog=_EPILOG,
                                      formatter_class=argparse.RawDescriptionHelpFormatter)
        command.add_argument("--root", required=True, type=Path, help="folder holding the official layout")
        command.add_argument("--out", type=Path, default=Path("data/tables"),
                             help="where to write <dataset>.csv and the report (default data/tables)")
        command.add_argument("--decode", action="store_true",
                             help="open every image (finds truncated, corrupt, empty, oversized and too small "
                                  "files; slower); the problems list <dataset>_problems.csv is always written")
        command.add_argument("--labels-only", action="store_true",
                             help="read the labels only; do not look at the images (no duplicate check)")
        command.add_argument("--drop-bad", action="store_true",
                             help="leave unusable images (missing, unreadable, too large, too small) out of the "
                                  "table instead of failing")
        command.add_argument("--strict", action="store_true",
                             help="fail when the counts differ from the official release")
        command.add_argument("--splits", choices=SPLIT_CHOICES, default=None,
                             help="official: the release's split; seeded: train/val/test stratified by protected "
                                  "group x target, copies of one photo kept together; test: every row test (a "
                                  "cross-dataset test set). Default: " +
                                  ("test (UTKFace has no official split)" if name == "utkface" else "official"))
        command.add_argument("--target", default="gender", help="the target a seeded split is stratified by")
        command.add_argument("--val-fraction", type=float, default=0.1,
                             help="share of the validation split (seeded; FairFace's official: of train)")
        command.add_argument("--test-fraction", type=float, default=0.2, help="share of the test split (seeded)")
        command.add_argument("--seed", type=int, default=0, help="seed of the seeded splits and of --max-train")
        command.add_argument("--max-train", type=int, default=None,
                             help="keep about this many training images (stratified; the rest are left out)")
        command.add_argument("--duplicates", choices=("drop", "keep_one"), default="drop",
                             help="byte-identical images with conflicting labels: leave every copy out (drop, "
                                  "default) or keep the copy whose path sorts first (keep_one)")
        command.add_argument("--cache-size", type=int, default=None,
                             help="also write copies resized to this shorter side (pixels)")
        command.add_argument("--cache-dir", type=Path, default=None,
                             help="where the resized copies go (default <out>/<dataset>_<size>px)")
        command.add_argument("--threads", type=int, default=4, help="threads for hashing and resizing (default 4)")
        command.add_argument("--overwrite", action="store_true",
                             help="replace <out>/<dataset>.csv when it exists (the report and problems list "
                                  "are rewritten on every run)")
        if name == "fairface":
            command.add_argument("--labels", type=Path, default=None, help="folder of the label CSVs (default --root)")
            command.add_argument("--images", default=None, help="image folder under --root (default: found)")
        elif name == "utkface":
            command.add_argument("--images", default=None, help="image folder under --root (default: UTKFace/ or --root)")
        elif name == "lfwa":
            command.add_argument("--attributes", default="lfw_att_73.mat")
            command.add_argument("--indices", default="indices_train_test.mat",
                                 help="train/test split file, or 'none' to label every image test")
            command.add_argument("--images", default="lfw")
        else:
            command.add_argument("--attributes", default="list_attr_celeba.txt")
            command.add_argument("--partition", default="list_eval_partition.txt")
            command.add_argument("--images", default="img_align_celeba")

    synthetic = commands.add_parser("synthetic", help="render the synthetic faces (PNG + labels.csv)",
                                    description="Render the synthetic faces (finefcace.sources.synthetic).")
    synthetic.add_argument("--out", type=Path, required=True, help="output folder (images + labels.csv)")
    synthetic.add_argument("--n-train", type=int, default=1600)
    synthetic.add_argument("--n-val", type=int, default=320)
    synthetic.add_argument("--n-test", type=int, default=640)
    synthetic.add_argument("--size", type=int, default=64, help="image side in pixels")
    synthetic.add_argument("--seed", type=int, default=0)
    synthetic.add_argument("--bias", choices=("default", "neutral"), default="default")
    synthetic.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE",
                           help="override a bias knob, e.g. --knob cue_contrast=1,1,1,0.5 --knob noise=0")
    synthetic.add_argument("--threads", type=int, default=None)
    synthetic.add_argument("--overwrite", action="store_true",
                           help="write into --out even when it already holds files (same names are replaced)")
    for command in commands.choices.values():
        command.add_argument("--debug", action="store_true",
                             help="on bad input, also print the traceback (for reporting a bug)")
    return parser


def _check_arguments(args: argparse.Namespace) -> None:
    """Refuse options that cannot work, before anything is read or written (exit status 2)."""
    from finefcace.errors import UserError, check_output
    from finefcace.sources.images import MIN_CACHE_SIZE

    def refuse(message: str) -> None:
        raise UserError(message)

    if args.out.exists() and not args.out.is_dir():
        refuse(f"--out {args.out} is a file; give a folder (it is created when missing)")
    threads = getattr(args, "threads", None)
    if threads is not None and threads < 1:
        refuse(f"--threads must be at least 1, got {threads}")
    if args.dataset == "synthetic":
        from finefcace.sources.synthetic import check_generation, resolve_bias

        check_generation(n_train=args.n_train, n_val=args.n_val, n_test=args.n_test, size=args.size)
        resolve_bias(args.bias, **dict(_parse_knob(k) for k in args.knob))
        check_output(args.out, folder=True, overwrite=args.overwrite)
        return
    check_output(args.out / f"{args.dataset}.csv", overwrite=args.overwrite, option="the table",
                 elsewhere="choose another --out folder")
    if not args.root.is_dir():
        refuse(f"--root {args.root} is not a folder; point it at the {args.dataset} download "
               "in its official layout (README: Where to put the real datasets)")
    if args.dataset == "fairface" and not 0.0 <= args.val_fraction < 1.0:
        refuse(f"--val-fraction must be in [0, 1), got {args.val_fraction} (e.g. 0.1: 10 % of train)")
    if args.cache_size is not None:
        if args.labels_only:
            refuse("--cache-size needs the images: drop --labels-only")
        if args.cache_size < MIN_CACHE_SIZE:
            refuse(f"--cache-size must be at least {MIN_CACHE_SIZE} pixels, got {args.cache_size}")
        if args.cache_dir is not None and args.cache_dir.resolve() == args.root.resolve():
            refuse(f"--cache-dir {args.cache_dir} is the dataset root: the resized copies would replace "
                   "the originals; give another folder")


def _adapter_options(args: argparse.Namespace) -> dict[str, Any]:
    if args.dataset == "fairface":
        return {"labels": args.labels, "images": args.images, "val_fraction": args.val_fraction, "seed": args.seed}
    if args.dataset == "utkface":
        return {"images": args.images}
    if args.dataset == "lfwa":
        indices = None if str(args.indices).lower() == "none" else args.indices
        return {"attributes": args.attributes, "indices": indices, "images": args.images}
    return {"attributes": args.attributes, "partition": args.partition, "images": args.images}


def _count_checks(name: str, table, skipped: list[str], official: bool) -> list[str]:
    """Differences from the official release's sizes (a partial download, another version);
    ``table`` as the adapter read it (before the split protocol)."""
    from finefcace.sources.releases import EXPECTED_COUNTS

    expected = EXPECTED_COUNTS[name]
    notes = []
    if name == "fairface":
        release_val = (table["split"] == "test") if official else (table["split"] == "val")
        found = {"train": int((~release_val).sum()), "val": int(release_val.sum())}
        for split, count in found.items():
            if count != expected[split]:
                notes.append(f"fairface_label_{split}.csv has {count} rows; the release has {expected[split]}")
    elif name == "celeba" and official:
        for split in ("train", "val", "test"):
            count = int((table["split"] == split).sum())
            if count != expected[split]:
                notes.append(f"{split}: {count} images; the official partition has {expected[split]}")
    elif name == "utkface":
        total = len(table) + len(skipped)
        if total != expected["files"]:
            notes.append(f"{total} files; the aligned-and-cropped release has {expected['files']}")
    elif name == "lfwa":
        if len(table) != expected["images"]:
            notes.append(f"{len(table)} labelled images; LFWA+ has {expected['images']}")
    return notes


def _run_real(args: argparse.Namespace) -> int:
    # imported here so that --help answers at once
    from finefcace import outputs
    from finefcace.sources.adapters import DEFAULT_SPLITS, adapter_table
    from finefcace.errors import UserError
    from finefcace.sources.duplicates import DuplicateImagesWarning
    from finefcace.sources.fairface import ImageFolderWarning
    from finefcace.sources.images import UNUSABLE_PROBLEMS, cache_resized, scan_images
    from finefcace.sources.preparation import finish_table
    from finefcace.sources.releases import SkippedRowsWarning
    from finefcace.sources.table import save_table

    name, root, out = args.dataset, args.root, args.out
    splits = args.splits or DEFAULT_SPLITS[name]
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SkippedRowsWarning)
        warnings.simplefilter("always", ImageFolderWarning)
        table = adapter_table(name, root, splits=splits, check_images=False, **_adapter_options(args))
    adapter_warnings = [str(w.message) for w in caught if issubclass(w.category, (SkippedRowsWarning,
                                                                                  ImageFolderWarning))]
    for message in adapter_warnings:
        print(f"warning: {message}")
    if "image_folder" in table.attrs:
        print(f"images: the table's paths point into {root / table.attrs['image_folder']}")
    if table.empty:
        skipped_rows = len(table.attrs.get("skipped", []))
        raise UserError(f"--root {root}: no {name} image could be labelled"
                        + (f" ({skipped_rows} file names skipped, listed above)" if skipped_rows else "")
                        + f"; is it the {name} download in its official layout? (README: Where to put the real "
                        "datasets). Nothing written")
    skipped = list(table.attrs.get("skipped", []))
    count_notes = _count_checks(name, table, skipped, official=splits == "official")
    for note in count_notes:
        print(f"count check: {note}")
    if count_notes and args.strict:
        print("error: counts differ from the official release (--strict)", file=sys.stderr)
        return 1

    out.mkdir(parents=True, exist_ok=True)
    problems_file = out / f"{name}_problems.csv"
    unusable_count = 0
    problems = None
    if not args.labels_only:
        problems = scan_images(table, root, decode=args.decode)
        outputs.write_csv(problems, problems_file, lineterminator="\n")  # always: an empty list is an answer
        unusable = problems[problems["problem"].isin(UNUSABLE_PROBLEMS)]
        unusable_count = int(unusable["path"].nunique())
        if len(problems):
            summary = problems["problem"].value_counts().to_dict()
            print(f"images needing attention: {summary} (listed in {problems_file})")
        else:
            print(f"images: no problem found ({'decoded' if args.decode else 'existence checked'}; "
                  f"{problems_file} is empty)")
        if unusable_count:
            first = unusable["path"].head(5).tolist()
            if not args.drop_bad:
                print(f"error: {unusable_count} of {len(table)} images are unusable under {root} "
                      f"({unusable['problem'].value_counts().to_dict()}; first: {first}; each with its reason in "
                      f"{problems_file}); complete the download or replace them, or rerun with --drop-bad to leave "
                      f"them out. No table written.", file=sys.stderr)
                return 1
            table = table[~table["path"].isin(set(unusable["path"]))].reset_index(drop=True)
            print(f"left out {unusable_count} unusable images (--drop-bad; each named in {problems_file})")
            if table.empty:
                raise UserError(f"every image under {root} is unusable ({unusable_count}, listed in {problems_file}): "
                                "an empty table would train on nothing; complete the download. No table written")
    elif splits == "seeded":
        print("warning: --labels-only: duplicates are not checked, so the seeded split may put copies of one "
              "photo in two splits")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DuplicateImagesWarning)
        table = finish_table(table, None if args.labels_only else root, splits=splits, target=args.target,
                             duplicates=args.duplicates, val_fraction=args.val_fraction,
                             test_fraction=args.test_fraction, seed=args.seed, max_train=args.max_train,
                             threads=args.threads)
    duplicate_warnings = [str(w.message) for w in caught if issubclass(w.category, DuplicateImagesWarning)]
    for message in duplicate_warnings:
        print(f"warning: {message}")
    preparation = table.attrs["preparation"]
    if not duplicate_warnings:
        print(f"duplicates: {preparation['duplicates_message']}")

    image_root = root
    if args.cache_size:
        cache_dir = args.cache_dir or out / f"{name}_{args.cache_size}px"
        image_root = cache_resized(table, root, cache_dir, args.cache_size, threads=args.threads)
        print(f"resized copies (shorter side {args.cache_size} px) in {image_root}: train with root={image_root}")

    table_file = save_table(table, out / f"{name}.csv")
    protected = [c for c in ("race", "gender") if c in table.columns]
    report = {
        "dataset": name,
        "root": str(root.resolve()),
        "image_root": str(Path(image_root).resolve()),
        "table": str(table_file),
        "rows": len(table),
        "rows_per_split": table["split"].value_counts().to_dict(),
        "groups": {f"{split}": {"|".join(map(str, k)) if isinstance(k, tuple) else str(k): int(v)
                                for k, v in part.groupby(protected).size().items()}
                   for split, part in table.groupby("split")} if protected else {},
        "skipped_names": skipped,
        "adapter_warnings": adapter_warnings,
        "count_checks": count_notes,
        "images_checked": "no (--labels-only)" if args.labels_only else ("decoded" if args.decode else "existence"),
        "image_problems": {} if problems is None else problems["problem"].value_counts().to_dict(),
        "problems_file": None if problems is None else str(problems_file),
        "dropped_images": unusable_count if args.drop_bad else 0,
        "preparation": preparation,
        "seconds": round(time.perf_counter() - started, 1),
    }
    outputs.write_text(out / f"{name}_report.json", json.dumps(report, indent=2, default=str) + "\n")
    print(f"{name}: {len(table)} rows {report['rows_per_split']} → {table_file} (images under {image_root})")
    return 0


def _parse_knob(text: str) -> tuple[str, Any]:
    from finefcace.errors import UserError

    if "=" not in text:
        raise UserError(f"--knob needs NAME=VALUE, got {text!r} (e.g. --knob noise=0)")
    name, value = text.split("=", 1)
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        raise UserError(f"--knob {name}: cannot read {value!r} as a number or a list of numbers "
                        "(e.g. --knob cue_contrast=1,1,1,0.5)") from None
    return name.strip(), parsed


def _run_synthetic(args: argparse.Namespace) -> int:
    from finefcace.sources.synthetic import generate_synthetic

    knobs = dict(_parse_knob(k) for k in args.knob)
    started = time.perf_counter()
    table = generate_synthetic(args.out, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test,
                               size=args.size, seed=args.seed, bias=args.bias, threads=args.threads, **knobs)
    seconds = time.perf_counter() - started
    print(f"synthetic: {len(table)} images of {args.size} px in {seconds:.1f} s "
          f"({len(table) / max(seconds, 1e-9):.0f} images/s) → {args.out / 'labels.csv'}")
    print(table.groupby(["split", "tone"]).size().unstack(fill_value=0).to_string())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m data_prep``; returns the exit status."""
    from finefcace import errors

    parser = _parser()
    args = parser.parse_args(argv)
    try:
        _check_arguments(args)
        if args.dataset == "synthetic":
            return _run_synthetic(args)
        return _run_real(args)
    except (errors.UserError, *errors.ENVIRONMENT_ERRORS) as error:
        return errors.report(error, debug=args.debug)
