"""Is the test suite strong enough? Plant known faults in the library and check tests catch each.

    python scripts/mutation_check.py              # every fault, its catching tests, a table
    python scripts/mutation_check.py --only ddof  # one fault

Each fault of :data:`FAULTS` is one small, plausible slip in the method, the trainer, the
metrics or the data code (a ``>=`` made ``>``, a step order reversed, a ``ddof`` changed, a
duplicate kept ...). The tracked files are copied once to a temporary folder (never touching
this checkout: an interrupted check leaves the sources untouched); each fault is written into the
copy, the tests named for it run there, and the file is written back. The fault is *caught* when
those tests fail with the fault and pass without it (both are run, so a test that fails anyway
does not count). The table printed at the end lists each fault, the tests that ran and what happened.

A faster suite must still catch every fault: the issue that made the suite fast asked for this
check before and after (``tests/test_mutation_check.py`` checks every fault still applies to
today's source, so the list cannot silently go stale).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Fault:
    name: str
    path: str  # relative to the repository root
    old: str  # must occur exactly once in the file
    new: str
    what: str
    tests: tuple[str, ...]  # pytest node ids or files that must catch it


FAULTS: tuple[Fault, ...] = (
    Fault("crop-threshold", "finefcace/attention.py",
          "rows = ((row_max - low[:, None]) / span >= threshold)",
          "rows = ((row_max - low[:, None]) / span > threshold)",
          "the region box keeps rows strictly above the threshold (>= made >)",
          ("tests/test_attention.py",)),
    Fault("step-order", "finefcace/mutual_learning.py",
          "for step, n in enumerate(range(num_experts - 2, -1, -1), start=1):",
          "for step, n in enumerate(range(0, num_experts - 1), start=1):",
          "steps 2..N train the experts shallow-to-deep instead of deep-to-shallow (Algorithm 1)",
          ("tests/test_mutual_learning.py",)),
    Fault("fused-raw-only", "finefcace/predict.py",
          "outputs.append(model(region))",
          "outputs.append(model(images))",
          "fused inference scores the raw image twice instead of the raw image and A_oval (Sec. 3.3)",
          ("tests/test_predict.py",)),
    Fault("dob-ddof", "finefcace/metrics.py",
          "def degree_of_bias(group_accuracies: Any, ddof: int = 1) -> float:",
          "def degree_of_bias(group_accuracies: Any, ddof: int = 0) -> float:",
          "Degree of Bias uses the population standard deviation (ddof 1 made 0)",
          ("tests/test_metrics.py",)),
    Fault("max-min-inverted", "finefcace/metrics.py",
          "ratio = high / low",
          "ratio = low / high",
          "the Max/Min ratio is computed as Min/Max",
          ("tests/test_metrics.py",)),
    Fault("patience", "finefcace/training/trainer.py",
          "if config.patience is not None and self.bad_epochs >= config.patience:",
          "if config.patience is not None and self.bad_epochs > config.patience:",
          "early stopping waits one epoch more than its patience (>= made >)",
          ("tests/training/test_trainer.py",)),
    Fault("resume-optimizer", "finefcace/training/trainer.py",
          'self.optimizer.load_state_dict(state["optimizer"])',
          "pass  # the optimizer's momentum is not restored on resume",
          "a resumed run restarts its optimizer's momentum",
          ("tests/training/test_checkpoint.py",)),
    Fault("duplicate-kept", "finefcace/sources/duplicates.py",
          "repeated = table[table[HASH_COLUMN].duplicated(keep=False)]",
          'repeated = table[table[HASH_COLUMN].duplicated(keep="first")]',
          "the first file of every group of identical images is left out of its group (a duplicate kept)",
          ("tests/test_data_prep.py",)),
    Fault("utkface-gender", "finefcace/sources/utkface.py",
          'GENDERS[1] if gender == "0" else GENDERS[0]',
          'GENDERS[0] if gender == "0" else GENDERS[1]',
          "UTKFace's gender code read the wrong way round (0 is Male)",
          ("tests/sources/test_utkface.py",)),
)


def apply(fault: Fault, root: Path) -> str:
    """Write ``fault`` into the copy at ``root``; refuse when its text is not there exactly once.
    Returns the file's text before the fault (what :func:`main` writes back after its tests)."""
    path = root / fault.path
    text = path.read_text()
    count = text.count(fault.old)
    if count != 1:
        raise SystemExit(f"fault {fault.name!r}: its text occurs {count} times in {fault.path} (expected once); "
                         f"update FAULTS in {Path(__file__).relative_to(ROOT)} to today's source")
    path.write_text(text.replace(fault.old, fault.new))
    return text


def copy_tracked_files(destination: Path) -> None:
    """The files git tracks (plus untracked, not ignored ones), copied as they are now."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def run_tests(root: Path, tests: tuple[str, ...]) -> tuple[int, str, float]:
    """pytest on ``tests`` in the copy at ``root`` (its finefcace first on the path): exit code, the
    failing test ids, seconds."""
    env = dict(os.environ, PYTHONPATH=str(root))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "not book",
                           "-n", "2", *tests], cwd=root, env=env, capture_output=True, text=True)
    failed = [line.split(" ")[1] for line in done.stdout.splitlines() if line.startswith("FAILED ")]
    return done.returncode, ", ".join(failed), time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="fault names (default: all)")
    args = parser.parse_args(argv)
    faults = [f for f in FAULTS if not args.only or f.name in args.only]
    rows, escaped = [], []
    with tempfile.TemporaryDirectory(prefix="mutation-check-") as tmp:
        copy = Path(tmp)
        copy_tracked_files(copy)
        passed_clean: set[tuple[str, ...]] = set()  # test sets already run without a fault
        for fault in faults:
            if fault.tests not in passed_clean:
                code, _, _ = run_tests(copy, fault.tests)
                if code != 0:
                    raise SystemExit(f"fault {fault.name!r}: its tests {fault.tests} fail without the fault "
                                     f"(exit {code}); fix the suite first")
                passed_clean.add(fault.tests)
            original = apply(fault, copy)
            try:
                code, failed, seconds = run_tests(copy, fault.tests)
            finally:
                (copy / fault.path).write_text(original)
            # Caught: a named test failed (exit 1; 2 when -x stopped the xdist workers after it). An
            # error before any test ran (3-5, or 2 with no failure: a collection error) is no catch.
            caught = bool(failed) and code in (1, 2)
            if not caught:
                escaped.append(fault.name)
            result = "caught" if caught else f"NOT caught (exit {code})"
            rows.append((fault.name, fault.what, " ".join(fault.tests), result, failed))
            print(f"[mutation] {fault.name}: {result} by {failed or 'no failing test'} ({seconds:.0f} s with the fault)",
                  flush=True)
    print("\n| fault | what it breaks | tests run | result | failing tests |\n|---|---|---|---|---|")
    for name, what, tests, result, failed in rows:
        print(f"| `{name}` | {what} | `{tests}` | {result} | `{failed}` |")
    print(f"\n{len(rows) - len(escaped)} of {len(rows)} faults caught" + (f"; escaped: {', '.join(escaped)}" if escaped else ""))
    return 1 if escaped else 0


if __name__ == "__main__":
    sys.exit(main())
