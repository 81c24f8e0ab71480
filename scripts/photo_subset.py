#!/usr/bin/env python3
"""A stratified subset of a UTKFace download, small enough to carry to a GPU machine.

A GPU lease takes the working tree plus at most 64 MiB of ignored paths (the device tool's
``carry``); the whole of UTKFace does not fit. This copies a race × gender stratified sample of
the photographs, in UTKFace's own layout (``UTKFace/<age>_<gender>_<race>_<datetime>.jpg.chip.jpg``,
the labels stay in the names), until ``--max-mib`` is reached, into an ignored folder (default
``data/utkface_subset``). Then, on the GPU machine::

    python scripts/gpu_check.py --out DIR --utkface data/utkface_subset

runs the input-size study (``experiments/resolution.py``) at 224 and 448 px. The photographs
are never committed (``data/`` is ignored; UTKFace is for non-commercial research only).

    python scripts/photo_subset.py --utkface data/utkface --out data/utkface_subset --max-mib 40
"""

from __future__ import annotations

import argparse
import shutil
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from finefcace.errors import UserError  # noqa: E402


def stratified_order(table, seed: int = 0):
    """The rows of ``table`` in an order whose every prefix is close to race × gender
    stratified: each group's rows shuffled, then dealt in proportion to the group's size."""
    shuffled = table.sample(frac=1.0, random_state=seed)
    rank = shuffled.groupby(["race", "gender"]).cumcount() / shuffled.groupby(["race", "gender"])["path"].transform("size")
    return shuffled.assign(_rank=rank.to_numpy()).sort_values("_rank", kind="stable").drop(columns="_rank")


def make_subset(utkface: Path, out: Path, max_mib: float, seed: int = 0) -> dict:
    """Copy photographs of ``utkface`` (stratified order) into ``out`` until ``max_mib``; return a summary."""
    from finefcace.sources.utkface import utkface_table

    if out.resolve() == utkface.resolve():
        raise UserError(f"--out {out} is the download itself: give a new folder")
    if out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out} is not empty: remove it or give a new folder (nothing was copied)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # malformed names are skipped; the adapter's warning lists them on use
        table = utkface_table(utkface, check_images=False)
    if table.empty:
        raise UserError(f"no UTKFace photographs under {utkface} (expected UTKFace/<age>_<gender>_<race>_<datetime>.jpg...)")
    limit, used, copied = max_mib * 2**20, 0, []
    for row in stratified_order(table, seed).itertuples(index=False):
        source = utkface / row.path
        size = source.stat().st_size
        if used + size > limit:
            break
        (out / row.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, out / row.path)
        used += size
        copied.append(row)
    kept = table[table["path"].isin({r.path for r in copied})]
    return {"photographs": len(kept), "of": len(table), "mib": round(used / 2**20, 1),
            "per_group": kept.groupby(["race", "gender"]).size().to_dict()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utkface", type=Path, required=True, help="the UTKFace download (official layout)")
    parser.add_argument("--out", type=Path, default=Path("data/utkface_subset"), help="a new folder (ignored by git)")
    parser.add_argument("--max-mib", type=float, default=40.0,
                        help="size cap of the copied photographs (the device tool carries at most 64 MiB in all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        summary = make_subset(args.utkface, args.out, args.max_mib, args.seed)
    except UserError as error:
        print(f"photo_subset: {error}", file=sys.stderr)
        return 2
    print(f"copied {summary['photographs']} of {summary['of']} photographs ({summary['mib']} MiB) into {args.out}; "
          f"per race × gender: {summary['per_group']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
