"""Benchmark: the data-loading share of a real-data training epoch, before and after the
decoded-image cache (:mod:`finefcace.sources.image_cache`).

On real UTKFace photographs (200 × 200 JPEGs; the seeded split of
:func:`finefcace.sources.adapters.dataset_table`), the training loop of the trainer — its
loader (:func:`finefcace.training.loaders.train_loader`, 0 workers as on a CPU) and its
iterations (:func:`finefcace.mutual_learning.finefcace_iteration` and
``baseline_iteration``) — runs ``--batches`` batches for each method, once decoding every
JPEG per item ("files") and once from the cache ("cached"), interleaved. The *loading share*
is the time spent waiting for the next batch over the total. Run (from the repository root)::

    python benchmarks/data_loading.py --root data/utkface --out benchmarks/results/data_loading.md

The images go through exactly the same transforms either way (the cache stores the first,
deterministic resize); only where the pixels come from changes.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finefcace import outputs  # noqa: E402
from finefcace.mutual_learning import baseline_iteration, finefcace_iteration  # noqa: E402
from finefcace.sources.adapters import dataset_table  # noqa: E402
from finefcace.sources.table import save_table  # noqa: E402
from finefcace.training.config import TrainConfig  # noqa: E402
from finefcace.training.loaders import EpochShardSampler, prepare_data, train_loader  # noqa: E402
from finefcace.training.recipe import build_model, build_optimizer, iteration_options  # noqa: E402


def measure(config: TrainConfig, data, images, batches: int, warmup: int) -> dict[str, float]:
    """Seconds waiting for batches and in total over ``batches`` training batches (after ``warmup``)."""
    torch.manual_seed(config.seed)
    data.train.images = images
    model = build_model(config, len(data.classes))
    optimizer = build_optimizer(model, config.resolved())
    batch_size = config.resolved()["batch_size"]
    sampler = EpochShardSampler(len(data.train), batch_size=batch_size, seed=config.seed)
    loader = iter(train_loader(data.train, sampler, config, batch_size, torch.device("cpu")))
    options = iteration_options(config)
    waiting = total = 0.0
    for index in range(warmup + batches):
        started = time.perf_counter()
        x, y, _ = next(loader)
        loaded = time.perf_counter()
        if config.method == "finefcace":
            finefcace_iteration(model, optimizer, x, y, **options)
        else:
            baseline_iteration(model, optimizer, x, y)
        if index >= warmup:
            waiting += loaded - started
            total += time.perf_counter() - started
    return {"loading_s_per_batch": waiting / batches, "total_s_per_batch": total / batches,
            "loading_share": waiting / total}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("data/utkface"),
                        help="a UTKFace download (official layout)")
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=30, help="measured batches per method and source")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown table here (+ .json)")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = dataset_table("utkface", args.root, splits="seeded")
        table_path = save_table(table, Path(folder) / "utkface.csv")
        results = {}
        for method in ("baseline", "finefcace"):
            config = TrainConfig.from_dict({
                "method": method, "table": str(table_path), "root": str(args.root), "backbone": "resnet18",
                "input_size": args.input_size, "batch_size": args.batch_size, "progress": False,
                "image_cache": str(Path(folder) / "cache"),
                "overrides": {"descriptor_dim": 256, "head_lr": 0.01, "backbone_lr": 0.01}})
            started = time.perf_counter()
            data = prepare_data(config)  # decodes every image once (the first method pays it)
            decode_seconds = time.perf_counter() - started
            cached = data.train.images
            for source, images in (("files", None), ("cached", cached)):
                results[(method, source)] = measure(config, data, images, args.batches, args.warmup)
                print(method, source, {k: round(v, 3) for k, v in results[(method, source)].items()}, flush=True)
            if method == "baseline":
                first_decode = decode_seconds
    rows = [{"method": m, "images": s, **v} for (m, s), v in results.items()]
    summary = {"date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
               "machine": f"{os.cpu_count()} CPUs ({platform.machine()}), torch {torch.__version__}, "
                          f"{torch.get_num_threads()} threads",
               "images": len(table), "train_images": int((table["split"] == "train").sum()),
               "input_size": args.input_size, "batch_size": args.batch_size, "batches": args.batches,
               "decode_once_seconds": round(first_decode, 1), "rows": rows}
    for row in rows:
        print(f"{row['method']:9s} {row['images']:6s} {row['total_s_per_batch']:.3f} s/batch, "
              f"loading {row['loading_s_per_batch']:.3f} s ({100 * row['loading_share']:.1f} %)")
    if args.out:
        write_table(summary, args.out)
    return 0


def write_table(summary: dict, out: Path) -> None:
    """The result as a generated Markdown table (and its JSON beside it)."""
    outputs.write_json(out.with_suffix(".json"), summary, indent=2)
    lines = [
        "<!-- Generated by `python benchmarks/data_loading.py --out ...`; do not edit by hand. -->",
        "",
        f"Real UTKFace photographs ({summary['train_images']:,} training images, 200 × 200 JPEG), ResNet-18 from "
        f"scratch at {summary['input_size']} px, batch {summary['batch_size']}, {summary['batches']} training "
        f"batches per row after warm-up, 0 loader workers; {summary['machine']}; measured {summary['date']}. "
        f"Decoding every image once (the cache) took {summary['decode_once_seconds']} s. "
        f"Regenerate: `python benchmarks/data_loading.py --root <UTKFace folder> --out {out.as_posix()}`.",
        "",
        "| method | images from | s per batch | loading, s per batch | loading share |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {r['method']} | {'the JPEG files' if r['images'] == 'files' else 'the decoded cache'} | "
              f"{r['total_s_per_batch']:.3f} | {r['loading_s_per_batch']:.3f} | {100 * r['loading_share']:.1f} % |"
              for r in summary["rows"]]
    outputs.write_text(out, "\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
