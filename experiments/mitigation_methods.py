"""FineFACE and four bias-mitigation methods trained side by side, under identical conditions.

The study of ``notebooks/07_mitigation_methods.ipynb``: every arm of
:data:`finefcace.course.mitigation_methods.ARMS` (the baseline, FineFACE, group-balanced
training two ways, domain-independent training, adversarial debiasing, group DRO) trained for
every seed by the same engine (:func:`finefcace.training.study.run_study`) from one profile's
training keys — same data, backbone, optimiser, schedule, epochs and early stopping — and
scored on the same test split with bootstrap intervals. Writes the results as JSON and the
chapter's tables and comparison text as Markdown beside it::

    python experiments/mitigation_methods.py                      # quick profile (SYNTHETIC faces), seeds 0 1 2
    python experiments/mitigation_methods.py --report-only        # Markdown again from the JSON, no training
    python experiments/mitigation_methods.py --profile configs/paper_fairface.yaml --runs-root runs/paper_mitigation \\
        --out experiments/results/mitigation_methods_fairface.json  # the paper's setting (GPU, FairFace)

Runs are train-or-load under ``--runs-root``: a second call loads them. On two CPU cores the
quick profile took 38 min (FineFACE's runs are most of it).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: the repository's package
    sys.path.insert(0, str(ROOT))

from finefcace import outputs  # noqa: E402
from finefcace.course import mitigation_methods  # noqa: E402
from finefcace.training.config import profile_values  # noqa: E402
from finefcace.training.study import StudyResults, run_study  # noqa: E402

DEFAULTS = {"profile": "configs/quick.yaml", "seeds": [0, 1, 2], "runs_root": "runs/experiments/mitigation_methods",
            "out": mitigation_methods.RESULTS, "n_bootstrap": 1000}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default=DEFAULTS["profile"], help="notebook profile whose training keys every arm shares")
    parser.add_argument("--seeds", type=int, nargs="+", default=DEFAULTS["seeds"])
    parser.add_argument("--runs-root", default=DEFAULTS["runs_root"], help="where the runs live (train-or-load)")
    parser.add_argument("--out", default=DEFAULTS["out"], help="results JSON (the Markdown goes beside it, .md)")
    parser.add_argument("--n-bootstrap", type=int, default=DEFAULTS["n_bootstrap"])
    parser.add_argument("--report-only", action="store_true", help="no training: the Markdown again from --out")
    parser.add_argument("--debug", action="store_true", help="on bad input, also print the traceback")
    return parser.parse_args(argv)


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse, before anything is trained, options that cannot work (one line naming the option
    and the fix): a missing profile, repeated seeds, a negative bootstrap count, an ``--out``
    that is a folder or cannot be written, ``--report-only`` before any results exist."""
    from finefcace.errors import UserError, check_output_folder

    out = Path(args.out)
    if args.report_only:
        if not out.is_file():
            raise UserError(f"--report-only: there are no results to report yet ({out} does not exist); run the "
                            f"study first, which writes them: {command_line(args)}")
        check_output_folder(out.parent, option="the folder of --out")
        return
    if not Path(args.profile).is_file():
        raise UserError(f"--profile {args.profile} does not exist; give a notebook profile (e.g. configs/quick.yaml)")
    repeated = sorted({s for s in args.seeds if args.seeds.count(s) > 1})
    if repeated:
        raise UserError(f"--seeds names {repeated[0]} more than once ({' '.join(map(str, args.seeds))}); give each once")
    if args.n_bootstrap < 0:
        raise UserError(f"--n-bootstrap must be at least 0, got {args.n_bootstrap}")
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give the results file to write (e.g. {out / 'results.json'})")
    check_output_folder(out.parent, option="the folder of --out")


def command_line(args: argparse.Namespace) -> str:
    """The command that regenerates these results (non-default options spelled out)."""
    parts = [mitigation_methods.REGENERATE]
    for key in ("profile", "seeds", "runs_root", "out", "n_bootstrap"):
        value = getattr(args, key)
        if value != DEFAULTS[key]:
            shown = " ".join(map(str, value)) if isinstance(value, list) else shlex.quote(str(value))
            parts.append(f"--{key.replace('_', '-')} {shown}")
    return " ".join(parts)


def main(argv: list[str] | None = None) -> StudyResults:
    args = parse(argv)
    check_arguments(args)
    out = Path(args.out)
    if args.report_only:
        results = StudyResults.from_json(out)
    else:
        base = {**profile_values(args.profile), "progress": False}
        results = run_study("mitigation_methods", base, mitigation_methods.ARMS, args.seeds, args.runs_root,
                            n_bootstrap=args.n_bootstrap, command=command_line(args))
        results.to_json(out)
    markdown = out.with_suffix(".md")
    outputs.write_text(markdown, mitigation_methods.results_markdown(results))
    print(f"wrote {out} and {markdown}")
    return results


if __name__ == "__main__":
    from finefcace.errors import run_script

    sys.exit(run_script(main))
