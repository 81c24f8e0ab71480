"""Shared test configuration: markers, the realdata location, small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """Under pytest-xdist (``-n 2``) each worker is one process on a 2-core machine: torch gets one
    thread per worker so two workers do not fight over the cores (2 workers x 2 threads ran slower
    than one), and so do the subprocesses a worker starts (the CLI, papermill's kernels, the
    scripts), through ``OMP_NUM_THREADS``. Outside xdist (the course build's session of ``make
    test``, a plain ``pytest``) torch keeps its default."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
        os.environ["OMP_NUM_THREADS"] = "1"


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    """Skip `gpu` tests, with the reason printed (`-ra`), where CUDA is absent."""
    if _cuda_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU: torch.cuda.is_available() is False here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def realfaces_dir() -> Path:
    """`../shared/realfaces` beside the checkout (or $FINEFCACE_REALFACES): real, labelled photographs
    (UTKFace, a FairFace sample, a CelebA sample) in their official layouts; skip when absent."""
    candidate = Path(os.environ.get("FINEFCACE_REALFACES", PROJECT_ROOT.parent / "shared" / "realfaces"))
    if not (candidate / "utkface").is_dir():
        pytest.skip(f"real photographs not found at {candidate} (a fresh clone has none; set FINEFCACE_REALFACES "
                    "to the folder holding utkface/, fairface/ and celeba/ in their official layouts)")
    return candidate


@pytest.fixture(scope="session")
def realdata_dir() -> Path:
    """`../shared/realdata` beside the checkout (or $FINEFCACE_REALDATA); skip when absent."""
    candidate = Path(os.environ.get("FINEFCACE_REALDATA", PROJECT_ROOT.parent / "shared" / "realdata"))
    if not candidate.is_dir():
        pytest.skip(f"real label files not found at {candidate} (a fresh clone has none; "
                    "set FINEFCACE_REALDATA to the folder holding fairface/, celeba/, utkface/)")
    return candidate
