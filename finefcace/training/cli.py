"""Command line: ``python -m finefcace train|evaluate|predict|card``.

The keys are those of :class:`finefcace.training.config.TrainConfig` — the same names as the
notebooks' ``parameters`` cells — read from ``--config file.yaml`` and changed with
``--set key=value`` (YAML values: ``--set epochs=3 --set experts=[3,4,5]
--set overrides.head_lr=0.01``). Runs under ``torchrun`` unchanged::

    python -m finefcace train --config configs/quick_synthetic_cpu.yaml
    python -m finefcace train --config configs/quick_synthetic_cpu.yaml --method group_dro --set run_dir=runs/dro
    python -m finefcace train --profile <notebook profile>.yaml --set run_dir=runs/quick/gender-finefcace
    torchrun --nproc_per_node=4 -m finefcace train --config configs/fairface_resnet50_paper.yaml
    python -m finefcace evaluate --config configs/quick_synthetic_cpu.yaml
    python -m finefcace predict --run-dir runs/fairface --table utkface.csv --root UTKFace --out utk.csv
    python -m finefcace predict --run-dir runs/fairface --images my_photos/ --out mine.csv
    python -m finefcace card --run-dir runs/quick/gender-finefcace

Introduced in ``notebooks/04_training.ipynb`` (the "From the command line" section; ``card``
writes a finished run's ``model_card.md`` again, :mod:`finefcace.training.model_card`).
Exit status: 0 done, 1 training failed (non-finite loss, ...), 2 bad input — configuration,
data, checkpoint, an output that would overwrite something (one line ``error: ...`` naming
the key, file or row and the fix, no traceback: :mod:`finefcace.errors`; ``--debug`` shows
the traceback too; nothing was written), 130 interrupted (``last.pt`` saved: run the same
command again to resume).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "build_parser"]

logger = logging.getLogger("finefcace")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m finefcace",
        description="FineFACE (Manzoor & Rattani): train, evaluate and predict from a YAML config; write model cards.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def config_options(command: argparse.ArgumentParser, required: bool) -> None:
        source = command.add_mutually_exclusive_group(required=required)
        source.add_argument("--config", "-c", help="YAML training config (keys of finefcace.training.config.TrainConfig; "
                                                    "any other key is an error)")
        source.add_argument("--profile", "-p", help="a notebook profile (papermill parameter file): its "
                                                     "training keys are used, notebook-only keys ignored")
        command.add_argument("--set", "-s", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                             help="change one key (value read as YAML); repeatable; dotted keys reach into overrides")
        command.add_argument("--quiet", "-q", action="store_true", help="no progress bars, warnings only")
        command.add_argument("--debug", action="store_true",
                             help="on bad input, also print the traceback (for reporting a bug)")

    train = commands.add_parser("train", help="train (or resume) the run a config describes")
    config_options(train, required=True)
    from finefcace.mitigation import METHODS

    train.add_argument("--method", choices=METHODS,
                       help="what to train (the config key 'method'): FineFACE, the baseline, or a bias-mitigation "
                            "method, which trains with the protected labels (its options: --set method_options.NAME=VALUE)")
    train.add_argument("--load-if-done", action="store_true",
                       help="do nothing when run_dir already holds a finished run of this config (train-or-load)")

    evaluate = commands.add_parser("evaluate", help="predictions of a run's best model on its own split; accuracy per group")
    config_options(evaluate, required=False)
    evaluate.add_argument("--run-dir", help="run directory (default: the config's run_dir)")
    evaluate.add_argument("--split", default="test", choices=("train", "val", "test"))
    evaluate.add_argument("--out", help="CSV to write (default: <run_dir>/predictions_<split>.csv)")
    evaluate.add_argument("--overwrite", action="store_true",
                          help="replace --out when it exists (never the table read or a file of the run)")

    predict = commands.add_parser("predict", help="predictions of a run's best model on another dataset table")
    config_options(predict, required=False)
    predict.add_argument("--run-dir", help="run directory (default: the config's run_dir)")
    images = predict.add_mutually_exclusive_group(required=True)
    images.add_argument("--table", help="dataset table CSV (same target as the run; without the target column, or "
                                        "without 'split', it is predicted without accuracy / as one split)")
    images.add_argument("--images", help="a folder of images to predict on (no labels, no table needed)")
    predict.add_argument("--root", help="image folder of --table (default: the table's folder)")
    predict.add_argument("--split", default="test", choices=("train", "val", "test"))
    predict.add_argument("--out", required=True, help="CSV to write")
    predict.add_argument("--overwrite", action="store_true",
                         help="replace --out when it exists (never the table read or a file of the run)")

    card = commands.add_parser("card", help="write a finished run's model card (model_card.md in its folder) again")
    config_options(card, required=False)
    card.add_argument("--run-dir", help="run directory (default: the config's run_dir)")
    return parser


def _setup_logging(quiet: bool) -> None:
    rank = int(os.environ.get("RANK", "0"))
    level = logging.WARNING if quiet or rank != 0 else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")


def _config(args: argparse.Namespace, **changes):
    from finefcace.training.config import load_config, profile_values

    source = profile_values(args.profile) if args.profile else args.config
    return load_config(source, args.assignments, **changes)


def _run_dir(args: argparse.Namespace) -> Path:
    from finefcace.training.config import ConfigError

    if args.run_dir:
        return Path(args.run_dir)
    if not (args.config or args.profile):
        raise ConfigError("give --run-dir, or --config/--profile whose run_dir holds the trained run")
    return Path(_config(args).run_dir)


def _group_accuracy(predictions) -> str:
    if "y_true" not in predictions.columns:
        return f"no labels: predictions only (no accuracy) for {len(predictions)} images"
    lines = [f"accuracy {float((predictions['y_true'] == predictions['y_pred']).mean()):.4f} "
             f"on {len(predictions)} images"]
    from finefcace.training.evaluation import copied_columns

    for column in copied_columns(predictions):
        grouped = (predictions["y_true"] == predictions["y_pred"]).groupby(predictions[column]).agg(["mean", "size"])
        cells = ", ".join(f"{group}: {row['mean']:.4f} (n={int(row['size'])})" for group, row in grouped.iterrows())
        lines.append(f"  by {column}: {cells}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m finefcace`` and the ``finefcace`` script."""
    args = build_parser().parse_args(argv)
    _setup_logging(args.quiet)
    from finefcace import errors
    from finefcace.training.evaluation import evaluate_run
    from finefcace.training.trainer import NonFiniteLossError, TrainingInterrupted, train, train_or_load

    try:
        if args.command == "train":
            changes = {"progress": False} if args.quiet else {}
            if args.method is not None:
                changes["method"] = args.method
            config = _config(args, **changes)
            result = (train_or_load if args.load_if_done else train)(config)
            if int(os.environ.get("RANK", "0")) == 0:
                print(json.dumps({"run_dir": str(result.run_dir), **result.summary}, indent=1, default=str))
            return 0
        run_dir = _run_dir(args)
        if args.command == "card":
            from finefcace.training.model_card import write_model_card

            print(f"wrote {write_model_card(run_dir)}")
            return 0
        if args.command == "evaluate":
            out = Path(args.out) if args.out else run_dir / f"predictions_{args.split}.csv"
            predictions = evaluate_run(run_dir, split=args.split, out=out, overwrite=args.overwrite)
        else:
            out = Path(args.out)
            predictions = evaluate_run(run_dir, split=args.split, table=args.table, root=args.root,
                                       images=args.images, out=out, overwrite=args.overwrite)
        print(_group_accuracy(predictions))
        print(f"wrote {out}")
        return 0
    except (errors.UserError, *errors.ENVIRONMENT_ERRORS) as error:
        return errors.report(error, debug=args.debug)
    except NonFiniteLossError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except TrainingInterrupted as error:
        print(f"interrupted: {error}", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
