"""The table of bad inputs and faults (``tests/bad_inputs.py``), run against a checkout.

Each case runs as a subprocess (``python -m finefcace ...``, ``python -m data_prep ...`` or a
notebook cell in an IPython shell) with ``PYTHONPATH`` set to the checkout, in a fresh
folder; the outcome (exit status, first line of the message, traceback, files overwritten or
written, what the case expects) is saved as JSON. Two saved runs — say the commit before the
hardening pass and after it — are printed side by side as a markdown table::

    python scripts/bad_inputs_table.py run --checkout /tmp/before --out before.json
    python scripts/bad_inputs_table.py run --checkout . --out after.json
    python scripts/bad_inputs_table.py table before.json after.json

The cases, and what each must do, are the ones ``tests/test_bad_inputs.py`` asserts.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from tests.bad_inputs import CASES, build_shared, run_case  # noqa: E402


def run(checkout: Path, out: Path, only: list[str] | None, work: Path | None) -> None:
    work = Path(tempfile.mkdtemp(prefix="bad-inputs-")) if work is None else work
    python_path = str(checkout.resolve())
    started = time.perf_counter()
    shared = build_shared(work / "shared", python_path)
    results = {}
    for case in CASES:
        if only and case.id not in only:
            continue
        case_started = time.perf_counter()
        outcome = run_case(case, work / case.id, shared, python_path)
        results[case.id] = {
            "status": outcome.status,
            "line": outcome.first_line(case.message),
            "traceback": outcome.traceback,
            "problems": outcome.problems,
            "seconds": round(time.perf_counter() - case_started, 1),
        }
        print(f"{case.id}: exit {outcome.status} {'ok' if not outcome.problems else outcome.problems}", flush=True)
    out.write_text(json.dumps({"checkout": python_path, "seconds": round(time.perf_counter() - started),
                               "results": results}, indent=1))


def _cell(result: dict | None, width: int = 110) -> str:
    if result is None:
        return "(not run)"
    line = result["line"].replace("|", "\\|")
    if len(line) > width:
        line = line[: width - 1] + "…"
    return f"{result['status']}: {line}"


def _verdict(result: dict) -> str:
    """The faults a run shows, in the issue's words: traceback, silent wrong result, overwrite."""
    kinds = []
    problems = result["problems"]
    if result["traceback"]:
        kinds.append("traceback")
    if any(p.startswith("overwrote") for p in problems):
        kinds.append("overwrote " + ", ".join(p.removeprefix("overwrote ") for p in problems if p.startswith("overwrote")))
    if any(p.startswith("wrote") for p in problems):
        kinds.append("wrote " + ", ".join(p.removeprefix("wrote ") for p in problems if p.startswith("wrote ")))
    overwrote = any(p.startswith("overwrote") for p in problems)
    if not result["traceback"] and result["status"] == 0 and problems and not overwrote:
        kinds.append("silent wrong result")  # exit 0 where a refusal (or another result) was due
    elif not kinds and problems:
        kinds.append("; ".join(problems))
    return ", ".join(kinds) if kinds else "ok"


def table(before: Path, after: Path) -> str:
    old = json.loads(before.read_text())["results"]
    new = json.loads(after.read_text())["results"]
    lines = ["| # | entry | bad input or fault | before: exit: first line | before: fault | after: exit: first line | after |",
             "|---|---|---|---|---|---|---|"]
    counts = {"before": {}, "after": {}}
    for number, case in enumerate([c for c in CASES if c.id in new], 1):
        b, a = old.get(case.id), new[case.id]
        for label, result in (("before", b), ("after", a)):
            if result is not None:
                verdict = _verdict(result)
                for kind in ("traceback", "overwrote", "wrote", "silent wrong result"):
                    if verdict.startswith(kind) or f", {kind}" in verdict:
                        counts[label][kind] = counts[label].get(kind, 0) + 1
                if verdict != "ok":
                    counts[label]["not as expected"] = counts[label].get("not as expected", 0) + 1
        lines.append(f"| {number} | {case.entry} | {case.what.replace('|', '/')} | {_cell(b)} | "
                     f"{_verdict(b) if b else ''} | {_cell(a)} | {_verdict(a)} |")
    summary = "; ".join(f"{label}: " + (", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "all as expected")
                        for label, c in counts.items())
    return "\n".join(lines) + f"\n\n{len(new)} cases. {summary}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    runner = commands.add_parser("run", help="run the cases against a checkout; save the outcomes as JSON")
    runner.add_argument("--checkout", type=Path, default=PROJECT, help="the checkout to import (PYTHONPATH)")
    runner.add_argument("--out", type=Path, required=True)
    runner.add_argument("--only", nargs="*", help="case ids to run (default: all)")
    runner.add_argument("--work", type=Path, help="folder for the cases (default: a new temporary folder)")
    printer = commands.add_parser("table", help="print two saved runs side by side (markdown)")
    printer.add_argument("before", type=Path)
    printer.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.checkout, args.out, args.only, args.work)
    else:
        print(table(args.before, args.after))
    return 0


if __name__ == "__main__":
    sys.exit(main())
