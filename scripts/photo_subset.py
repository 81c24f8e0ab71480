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

The subset is filled in a temporary folder beside ``--out`` and renamed to it at the end, so an
interrupted copy leaves no partial subset (its leftover is removed, with a warning, on the next
call). Files whose names carry no labels, and photographs that cannot be read (a dangling link),
are skipped, counted and named; a cap that admits no photograph is refused before anything is
copied. Bad input is one line ``error: ...`` with exit status 2 (``--debug`` adds the traceback).
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

from finefcace import outputs  # noqa: E402
from finefcace.errors import UserError  # noqa: E402

#: How many skipped names a message shows (the count is always whole).
SHOWN = 5


def stratified_order(table, seed: int = 0):
    """The rows of ``table`` in an order whose every prefix is close to race × gender
    stratified: each group's rows shuffled, then dealt in proportion to the group's size."""
    shuffled = table.sample(frac=1.0, random_state=seed)
    rank = shuffled.groupby(["race", "gender"]).cumcount() / shuffled.groupby(["race", "gender"])["path"].transform("size")
    return shuffled.assign(_rank=rank.to_numpy()).sort_values("_rank", kind="stable").drop(columns="_rank")


def _named(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f", ... ({len(names) - SHOWN} more)" if len(names) > SHOWN else "")


def make_subset(utkface: Path, out: Path, max_mib: float, seed: int = 0) -> dict:
    """Copy photographs of ``utkface`` (stratified order) into ``out`` until ``max_mib``; return
    a summary, with the files skipped (``skipped_names``: no labels in the name;
    ``unreadable``: cannot be read). Refuses (:class:`UserError`, nothing copied) a cap that is
    not positive or admits no photograph, a download without photographs, an ``--out`` that is
    the download, a file or a folder holding anything."""
    from finefcace.sources.utkface import utkface_table

    if not max_mib > 0:
        raise UserError(f"--max-mib must be positive, got {max_mib} (e.g. 40: the device tool carries 64 MiB in all)")
    if not utkface.is_dir():
        raise UserError(f"--utkface {utkface} is not a folder; point it at the UTKFace download (official layout: "
                        "UTKFace/<age>_<gender>_<race>_<datetime>.jpg.chip.jpg)")
    if out.resolve() == utkface.resolve():
        raise UserError(f"--out {out} is the download itself: give a new folder")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a new folder")
    if out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out} is not empty: remove it or give a new folder (nothing was copied)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # malformed names are counted and named below
        table = utkface_table(utkface, check_images=False)
    skipped_names = list(table.attrs.get("skipped", []))
    sizes, unreadable = {}, []
    for path in table["path"]:
        try:
            sizes[path] = (utkface / path).stat().st_size
        except OSError:  # a dangling link, a file removed meanwhile, no permission
            unreadable.append(path)
    table = table[table["path"].isin(sizes)]
    if table.empty:
        found = f" ({len(skipped_names)} files without labels in their names, {len(unreadable)} unreadable)" \
            if skipped_names or unreadable else ""
        raise UserError(f"no UTKFace photographs under {utkface}{found}: expected "
                        "UTKFace/<age>_<gender>_<race>_<datetime>.jpg.chip.jpg (nothing was copied)")
    limit = max_mib * 2**20
    smallest = min(sizes.values())
    if smallest > limit:
        raise UserError(f"--max-mib {max_mib} admits no photograph: the smallest is {smallest / 2**10:.1f} KiB "
                        f"({smallest / 2**20:.3f} MiB); give a larger cap (nothing was copied)")
    used, copied = 0, []
    with outputs.atomic_folder(out) as partial:  # the subset appears whole or not at all
        for row in stratified_order(table, seed).itertuples(index=False):
            size = sizes[row.path]
            if used + size > limit:
                break
            (partial / row.path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(utkface / row.path, partial / row.path)
            used += size
            copied.append(row)
    kept = table[table["path"].isin({r.path for r in copied})]
    return {"photographs": len(kept), "of": len(table), "mib": round(used / 2**20, 1),
            "per_group": kept.groupby(["race", "gender"]).size().to_dict(),
            "skipped_names": skipped_names, "unreadable": unreadable}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utkface", type=Path, required=True, help="the UTKFace download (official layout)")
    parser.add_argument("--out", type=Path, default=Path("data/utkface_subset"), help="a new folder (ignored by git)")
    parser.add_argument("--max-mib", type=float, default=40.0,
                        help="size cap of the copied photographs (the device tool carries at most 64 MiB in all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--debug", action="store_true", help="on bad input, also print the traceback")
    args = parser.parse_args(argv)
    summary = make_subset(args.utkface, args.out, args.max_mib, args.seed)
    if summary["skipped_names"]:
        print(f"skipped {len(summary['skipped_names'])} files whose names carry no labels "
              f"(not <age>_<gender>_<race>_<datetime>.jpg): {_named(summary['skipped_names'])}")
    if summary["unreadable"]:
        print(f"skipped {len(summary['unreadable'])} photographs that cannot be read (dangling links, removed "
              f"files): {_named(summary['unreadable'])}")
    print(f"copied {summary['photographs']} of {summary['of']} photographs ({summary['mib']} MiB) into {args.out}; "
          f"per race × gender: {summary['per_group']}")
    return 0


if __name__ == "__main__":
    from finefcace.errors import run_script

    sys.exit(run_script(main))
