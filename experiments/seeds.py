"""Several seeds and an equal-compute control for a profile's comparisons.

The book shows the results on its results page and in chapters 5 and 6.

    python experiments/seeds.py                               # the quick profile, seeds 0 1 2 (the book's)
    python experiments/seeds.py --profile configs/paper_fairface.yaml --seeds 0 1 2 --studies main
    python experiments/seeds.py --report-only                 # the Markdown again from the JSON, no training

Each study trains (or loads: train-or-load, so a second call only re-reports) every arm for
every seed with :func:`finefcace.training.study.run_study`, under
``<run_dir>/studies/<study>/<arm>/seed<k>``, and writes ``experiments/results/<profile>_<study>.json`` and
``<profile>_<study>.md``: the study's table and its "What we found" text
(:mod:`finefcace.course.findings`), which ``book/results.md`` includes and chapters 5 and 6
show. Nothing in them is typed by hand.

The studies:

- ``main``: the profile's classifier (chapters 4-5; its file is named for the target, e.g.
  ``quick_gender``): FineFACE, the baseline, and the
  baseline given FineFACE's number of **optimizer updates** (Algorithm 1 takes N + 2 steps per
  mini-batch, the baseline one: (N + 2)× the epochs, no early stopping, best validation epoch
  kept). Both wall times are recorded per run, so the table shows how far equal updates are
  from equal time.
- one study per attribute of the profile's ``attributes`` (chapter 5's attribute task), at
  its budget (``attribute_epochs``, ``attribute_max_batches``), with the same three arms.
- ``ablations``: chapter 6's trained ablations (pooling, number of experts, the published
  code's preset) against their reference, at chapter 6's budget (the profile's
  ``ablation_epochs`` and ``ablation_max_batches``, or ``--ablation-epochs`` and
  ``--ablation-max-batches``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the checkout's finefcace
from finefcace.course.findings import (  # noqa: E402  (one home for the arm names)
    ABLATION_REFERENCE,
    BASELINE_ARM as BASELINE,
    CONTROL_ARM as CONTROL,
    FINEFACE_ARM as FINEFACE,
    RESULTS_DIR,
)


def updates_per_batch(config: Any) -> int:
    """Optimizer updates per mini-batch: N + 2 for FineFACE (Algorithm 1), 1 for the baseline."""
    import torch

    from finefcace.mutual_learning import step_names
    from finefcace.training.recipe import build_model

    if config.method != "finefcace":
        return 1
    with torch.device("meta"):  # only the number of experts is needed: no weights, no arithmetic
        model = build_model(config.replace(weights=None), num_classes=2)
    return len(step_names(model.num_experts))


def optimizer_updates(config: Any, run_dir: Path) -> dict[str, float]:
    """The study's per-run measure: optimizer updates = mini-batches trained × updates per batch."""
    import json

    steps = json.loads((run_dir / "summary.json").read_text())["steps"]
    return {"optimizer_updates": float(steps * updates_per_batch(config))}


def comparison_arms(config: Any) -> list:
    """FineFACE, the baseline, and the baseline with FineFACE's optimizer updates."""
    from finefcace.training.study import Arm

    factor = updates_per_batch(config.replace(method="finefcace"))
    return [
        Arm(FINEFACE, {"method": "finefcace"}, "FineFACE"),
        Arm(BASELINE, {"method": "baseline"}, "Baseline"),
        Arm(CONTROL, {"method": "baseline", "epochs": factor * config.epochs, "patience": None},
            f"Baseline ×{factor} epochs"),
    ]


def ablation_arms(config: Any, params: dict[str, Any]) -> list:
    """Chapter 6's trained ablations: each pooling, expert set and preset of the profile that is
    not the reference's, against the reference (the profile's own FineFACE)."""
    import torch

    from finefcace.course.ablations import experts_arm, pooling_arm, preset_arm
    from finefcace.training.recipe import build_model
    from finefcace.training.study import Arm

    resolved = config.resolved()
    with torch.device("meta"):
        default_stages = list(build_model(config.replace(weights=None), num_classes=2).expert_stages)
    arms = [Arm(ABLATION_REFERENCE, {}, "reference: the profile's FineFACE")]
    arms += [Arm(pooling_arm(p), {"pooling": p}, f"pooling {p}") for p in params.get("poolings", [])
             if p != resolved["pooling"]]
    arms += [Arm(experts_arm(s), {"experts": s}, f"experts at stages {', '.join(map(str, s))}")
             for s in params.get("expert_sets", []) if list(s) != default_stages]
    arms += [Arm(preset_arm(p), {"preset": p}, f"preset {p}") for p in params.get("presets", []) if p != config.preset]
    return arms


STUDY_ORDER = ("main", "attributes", "ablations")


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse, before anything is trained, options that cannot work (one line naming the option
    and the fix): a profile that is not there, unknown studies, repeated seeds, budgets below
    one, an ``--out`` that is a file or cannot be written."""
    from finefcace.errors import UserError, check_output_folder

    profile = args.profile if args.profile.is_absolute() else ROOT / args.profile
    if not profile.is_file():
        raise UserError(f"--profile {args.profile} does not exist; give a notebook profile (e.g. configs/quick.yaml)")
    unknown = sorted(set(args.studies or ()) - set(STUDY_ORDER))
    if unknown:
        raise UserError(f"--studies: unknown study {unknown[0]!r}; choose from {', '.join(STUDY_ORDER)}")
    repeated = sorted({s for s in args.seeds if args.seeds.count(s) > 1})
    if repeated:
        raise UserError(f"--seeds names {repeated[0]} more than once ({' '.join(map(str, args.seeds))}); give each once")
    for option, value, least in (("--n-bootstrap", args.n_bootstrap, 0), ("--ablation-epochs", args.ablation_epochs, 1),
                                 ("--ablation-max-batches", args.ablation_max_batches, 1)):
        if value is not None and value < least:
            raise UserError(f"{option} must be at least {least}, got {value}")
    check_output_folder(args.out, option="--out")


def report_only(args: argparse.Namespace) -> int:
    """Rewrite each study's Markdown of the profile from its results JSON (the sentences and
    tables with today's code; the numbers as measured, the command as recorded)."""
    from finefcace import outputs
    from finefcace.course import findings
    from finefcace.errors import UserError
    from finefcace.training.study import StudyResults

    stem = args.profile.stem
    found = sorted(args.out.glob(f"{stem}_*.json"))
    if not found:
        raise UserError(f"--report-only: no results of profile {stem!r} in {args.out} ({stem}_<study>.json); run "
                        f"`python experiments/seeds.py --profile {args.profile}` first")
    for path in found:
        results = StudyResults.from_json(path)
        command = results.meta.get("command") or "python experiments/seeds.py"
        outputs.write_text(path.with_suffix(".md"),
                           f"<!-- Generated by `{command}`; do not edit by hand. -->\n\n{findings.report(results)}")
        print(f"[seeds] wrote {path.with_suffix('.md')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", type=Path, default=Path("configs/quick.yaml"),
                        help="notebook profile whose comparisons to repeat (default: the quick profile)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--studies", nargs="+", default=None,
                        help="which studies: main (the profile's target), attributes, ablations (default: all three)")
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--ablation-epochs", type=int, default=None,
                        help="epochs of every ablation run (default: the profile's ablation_epochs, chapter 6's)")
    parser.add_argument("--ablation-max-batches", type=int, default=None,
                        help="cap on an ablation run's batches per epoch (default: the profile's ablation_max_batches)")
    parser.add_argument("--out", type=Path, default=ROOT / RESULTS_DIR)
    parser.add_argument("--debug", action="store_true", help="on bad input, also print the traceback")
    parser.add_argument("--report-only", action="store_true",
                        help="no training: every study's Markdown again from its results JSON in --out")
    args = parser.parse_args(argv)
    check_arguments(args)
    if args.report_only:
        return report_only(args)

    import yaml

    from finefcace import outputs
    from finefcace.course import findings
    from finefcace.training.config import load_config, profile_values
    from finefcace.training.study import run_study

    profile = args.profile if args.profile.is_absolute() else ROOT / args.profile
    params = yaml.safe_load(profile.read_text()) or {}
    base = load_config({**profile_values(profile), "progress": False})
    wanted = set(args.studies or STUDY_ORDER)
    studies: list[tuple[str, Any, list]] = []
    if "main" in wanted:  # named for its target: gender in the quick and FairFace profiles
        studies.append((base.target, base, comparison_arms(base)))
    if "attributes" in wanted:
        for attribute in params.get("attributes") or []:
            config = base.replace(target=attribute, epochs=params.get("attribute_epochs", base.epochs),
                                  max_batches=params.get("attribute_max_batches"))
            studies.append((attribute, config, comparison_arms(config)))
    if "ablations" in wanted:
        epochs = args.ablation_epochs or params.get("ablation_epochs", base.epochs)
        max_batches = args.ablation_max_batches or params.get("ablation_max_batches")
        config = base.replace(epochs=epochs, max_batches=max_batches)
        studies.append(("ablations", config, ablation_arms(config, params)))

    command = ("python experiments/seeds.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))).strip()
    started = time.perf_counter()
    for name, config, arms in studies:
        results = run_study(f"{profile.stem}_{name}", config, arms, args.seeds,
                            Path(params.get("run_dir", "runs/quick")) / "studies" / name,
                            n_bootstrap=args.n_bootstrap, measure=optimizer_updates, command=command)
        results.to_json(args.out / f"{profile.stem}_{name}.json")
        outputs.write_text(args.out / f"{profile.stem}_{name}.md",
                           f"<!-- Generated by `{command}`; do not edit by hand. -->\n\n{findings.report(results)}")
        print(f"[seeds] {name}: done ({(time.perf_counter() - started) / 60:.1f} min so far)", flush=True)
    return 0


if __name__ == "__main__":
    from finefcace.errors import run_script

    sys.exit(run_script(main))
