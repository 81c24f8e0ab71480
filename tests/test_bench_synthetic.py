"""benchmarks/bench_synthetic.py: the synthetic-generation benchmark runs and writes the table
book/cost.md includes. Speed itself is never asserted here (the machines are noisy); the
benchmark prints it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_writes_a_table_of_measured_rates(tmp_path):
    out = tmp_path / "synthetic_generation.md"
    done = subprocess.run(
        [sys.executable, "benchmarks/bench_synthetic.py", "--size", "32", "--n", "16", "--repeats", "1",
         "--threads", "1", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "images/s wall clock" in done.stdout
    table = out.read_text()
    rows = re.findall(r"^\| (rendering[^|]*) \| ([\d,]+) \| ([\d,]+) \|$", table, flags=re.M)
    assert [name.strip() for name, _, _ in rows] == ["rendering (in memory)", "rendering + writing PNGs"]
    assert all(int(rate.replace(",", "")) > 0 for _, wall, cpu in rows for rate in (wall, cpu))
    assert "32 px, 16 images" in table


def test_the_book_includes_the_generated_table():
    cost = (ROOT / "book" / "cost.md").read_text()
    assert "../benchmarks/results/synthetic_generation.md" in cost
    assert (ROOT / "benchmarks" / "results" / "synthetic_generation.md").is_file()
