"""Benchmark: synthetic face generation speed, in images per second (spec/data.md: >= 1,000
images/s at 128 px on 2 CPU cores).

Measured in one run, side by side: rendering alone (faces sampled and rendered to uint8
tensors in memory) and rendering + writing (``generate_synthetic``: PNG files and the label
table on disk). Each is reported as wall-clock images/s with ``--threads`` threads and as
images per CPU-second (process CPU time, all threads): on a machine shared with other work
the wall-clock figure understates what the cores deliver, so both are printed together with
the load average. Run: ``python benchmarks/bench_synthetic.py [--size 128] [--n 2048]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from finefcace.synthetic import SyntheticBias, generate_synthetic, render_faces, sample_faces


def _measure(run, repeats: int) -> tuple[float, float]:
    """Best wall time and the CPU time of that run, in seconds."""
    best = (float("inf"), float("inf"))
    for repeat in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        run(repeat)
        result = (time.perf_counter() - wall, time.process_time() - cpu)
        best = min(best, result)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--n", type=int, default=2048, help="images per measurement")
    parser.add_argument("--threads", type=int, default=2, help="rendering threads (cores)")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()
    bias = SyntheticBias()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"synthetic faces: {args.size} px, {args.n} images, {args.threads} threads, "
          f"{os.cpu_count()} CPUs visible, load average {load:.1f}; best of {args.repeats}")

    render_faces(sample_faces(128, split="train", bias=bias, rng=np.random.default_rng(0)), args.size, bias,
                 threads=args.threads)  # warm-up

    def render(repeat: int) -> None:
        sample = sample_faces(args.n, split="train", bias=bias, rng=np.random.default_rng(repeat))
        render_faces(sample, args.size, bias, seed=repeat, threads=args.threads)

    def write(repeat: int) -> None:
        with tempfile.TemporaryDirectory() as folder:
            generate_synthetic(folder, n_train=args.n, n_val=0, n_test=0, size=args.size, seed=repeat,
                               threads=args.threads)

    rates = {}
    for name, run in (("rendering (in memory)", render), ("rendering + writing PNGs", write)):
        wall, cpu = _measure(run, args.repeats)
        rates[name] = args.n / wall
        print(f"{name:26s} {args.n / wall:7.0f} images/s wall clock   "
              f"{args.n / cpu:7.0f} images per CPU-second "
              f"(x{args.threads} cores = {args.threads * args.n / cpu:.0f}/s if the cores are free)")
    names = list(rates)
    print(f"writing makes generation {rates[names[0]] / rates[names[1]]:.2f}x slower than rendering alone")


if __name__ == "__main__":
    main()
