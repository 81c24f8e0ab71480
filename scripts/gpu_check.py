#!/usr/bin/env python3
"""The GPU path, proved and measured by one command (sized for a 15-minute GPU lease).

Run from anywhere, with a plain Python that has torch, torchvision, numpy, pandas, pillow,
pyyaml and tqdm (no install of this project, no notebook tooling, no network)::

    python scripts/gpu_check.py --out DIR             # on a GPU: the paper's setting, <= 7 minutes
    python scripts/gpu_check.py --tiny --out DIR      # anywhere: every stage, small (CI, ~1 minute on a CPU)
    python scripts/gpu_check.py --dry-run --out DIR   # the paper's model and size, batch 4, one repetition of everything
    python scripts/gpu_check.py --out DIR --utkface data/utkface_subset   # and the resolution study on real photos

Stages, in order (each guarded by its own time limit inside one global budget; a stage that
fails, errs or runs out of time is recorded as such and the next one still runs):

1. ``environment``: GPU, torch, CUDA, bf16 support, the bf16 peak on record for the GPU, a
   measured bf16 matrix-product rate, which optional packages are absent;
2. ``import``: the project imported from the source tree;
3. correctness: ``gpu_tests`` (the ``gpu``-marked tests, through pytest without the notebook
   plugins); ``attention_no_host_sync`` (the attention step of a real training iteration under
   ``torch.cuda.set_sync_debug_mode("error")``); ``crop_matches_reference`` (batched crops equal
   the per-sample loop of the published structure); ``bf16_channels_last_iteration`` (one
   Algorithm 1 iteration in bf16 autocast and channels_last with finite losses);
   ``checkpoint_resume`` (a training run stopped after its first batch and resumed from its
   checkpoint ends with the very weights of an uninterrupted run, bit for bit);
4. ``measurement``: the cost benchmark (``benchmarks/run.py``) at the paper's setting —
   baseline and FineFACE iterations, the published structure, fused inference, the crop batched
   vs per sample at batch 64, FLOPs, peak memory — with images/s, TFLOP/s and MFU;
   ``measurement_compiled``: the same iterations under ``torch.compile``, if time is left;
5. ``training``: the paper profile (``configs/fairface_resnet50_paper.yaml``) on synthetic faces
   rendered here, from scratch, for a bounded number of batches: the loss must fall, a
   checkpoint is written, evaluation runs, and the saved run is evaluated again from disk;
6. ``resolution`` and ``controls``, only with ``--utkface PHOTOS`` (real UTKFace photographs,
   e.g. the subset ``scripts/photo_subset.py`` makes to carry to a GPU machine; 240 s each, on
   top of the default budget): the input-size study (``experiments/resolution.py``) at the
   paper's sizes, 224 and 448 px, FineFACE and the baseline; and the region controls
   (``experiments/controls.py``) at 224 px, three seeds: the baseline, FineFACE, the baseline
   with FineFACE's updates, FineFACE with no regions and with placebo regions. Both are trained
   only (the GPU machine has no fairlearn, so nothing is reported there); every run's
   predictions, summary and attention-crop measures (no model files) are copied to
   ``DIR/<study>/runs``, and each stage prints the command that reports them where the metrics
   packages are installed (``--saved-runs``).

Writes ``DIR/gpu_check.json`` (everything), ``DIR/gpu_check.md`` (the tables; the book's cost
chapter shows this file once it is committed as ``benchmarks/results/gpu/gpu_check.md``) and
``DIR/gpu_check.log``, after every stage, and prints the tables at the end. Stages that need
CUDA report "skipped: no CUDA" on a CPU. Exit status: 0 when no stage failed, erred or ran out
of time, 1 otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the project runs from the source tree, uninstalled
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

#: The training profile of stage 5: the paper's FairFace setting (its data swapped for synthetic faces).
PAPER_PROFILE = ROOT / "configs" / "fairface_resnet50_paper.yaml"
#: Packages the GPU machine may lack; none of them may be needed here.
OPTIONAL_PACKAGES = ("matplotlib", "seaborn", "sklearn", "fairlearn", "h5py", "papermill", "nbval",
                     "nbformat", "jupyter_book")


def import_project() -> SimpleNamespace:
    """Every project name this script uses, imported in this one place (stage ``import``)."""
    from benchmarks import measure
    from benchmarks.reference import per_sample_regions
    from benchmarks.run import CONFIGS, TARGET_LABELS, build_workbench, describe_setting, run_benchmark
    from finefcace import (FineFACE, attention, evaluate_run, finefcace_iteration, generate_synthetic,
                           get_preset, load_config, train_finefcace)
    from finefcace.training.checkpoint import load_checkpoint
    from finefcace.training.recipe import build_optimizer

    return SimpleNamespace(**{name: value for name, value in locals().items()})


#: bf16 dense (no sparsity) tensor-core peaks, TFLOP/s, from the vendors' datasheets, by a
#: substring of ``torch.cuda.get_device_name()``; the first match wins (so "H100 PCIe" before
#: "H100"). A GPU not listed gets no MFU ("unknown"), never a guessed one.
BF16_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200 NVL", 835.0),
    ("H200", 989.0),       # SXM: the H100 SXM's tensor cores, more memory
    ("H100 NVL", 835.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),       # SXM (HBM3)
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
)


def bf16_peak_tflops(device_name: str) -> float | None:
    """The datasheet bf16 dense peak of a GPU by name, or None when it is not on record."""
    for key, peak in BF16_PEAK_TFLOPS:
        if key.lower() in device_name.lower():
            return peak
    return None


# ----------------------------------------------------------------------------- settings


@dataclasses.dataclass
class Setting:
    """What one run of the check does: sizes, bounds and budget (see :func:`make_setting`)."""

    name: str                      # "paper", "tiny" or "dry-run"
    backbone: str
    input_size: int
    batch: int
    crop_batch: int
    descriptor_dim: int | None     # C_v; None = the paper preset's 1024
    repetitions: int               # measurement: interleaved repetitions after `warmup`
    warmup: int
    profile: bool                  # measurement: torch.profiler top operators
    compile_backend: str | None    # measurement_compiled: torch.compile backend (None: stage skipped)
    compiled_repetitions: int
    synthetic: dict[str, int]      # n_train, n_val, n_test of the rendered faces
    train_epochs: int
    train_max_batches: int | None
    eval_max_batches: int | None
    resume_max_batches: int        # checkpoint_resume: batches per epoch, 2 epochs
    workers: int
    threads: int | None            # torch intra-op threads (None: torch's default)
    budget_s: float
    stage_limits: dict[str, float]
    #: resolution: the input-size study on real photographs (``--utkface``): sizes, seeds,
    #: training images, epochs
    resolution: dict[str, Any] = dataclasses.field(default_factory=lambda: dict(
        sizes=[224, 448], seeds=[0], max_train=1000, epochs=3))
    #: controls: the region controls on real photographs (``--utkface``, ``experiments/controls.py``):
    #: the five arms at one size, nearer the paper's setting than the CPU study's 96 px
    controls: dict[str, Any] = dataclasses.field(default_factory=lambda: dict(
        sizes=[224], seeds=[0, 1, 2], max_train=1000, epochs=3))


STAGE_LIMITS = {  # seconds, each also capped by what is left of the budget
    "environment": 30, "import": 60, "gpu_tests": 120, "attention_no_host_sync": 60,
    "crop_matches_reference": 60, "bf16_channels_last_iteration": 60, "synthetic_data": 60,
    "checkpoint_resume": 90, "measurement": 150, "training": 120, "measurement_compiled": 200,
    "resolution": 240, "controls": 240,
}
#: The stages that train a study on real photographs (``--utkface``): their time comes on top of
#: the default budget.
STUDY_STAGES = ("resolution", "controls")


def make_setting(kind: str, budget_s: float | None = None) -> Setting:
    """``paper`` (the GPU run), ``tiny`` (the CPU rehearsal CI runs) or ``dry-run`` (the paper's
    model and image size, batch 4, every repetition and batch count at its minimum)."""
    cpu_workers = min(6, max((os.cpu_count() or 2) - 2, 0))
    if kind == "paper":
        return Setting("paper", "resnet50", 448, 16, 64, None, repetitions=10, warmup=3, profile=True,
                       compile_backend="inductor", compiled_repetitions=5,
                       synthetic=dict(n_train=128, n_val=64, n_test=64), train_epochs=5,
                       train_max_batches=None, eval_max_batches=None, resume_max_batches=2,
                       workers=cpu_workers, threads=None, budget_s=budget_s or 420.0,
                       stage_limits=dict(STAGE_LIMITS))
    if kind == "dry-run":
        # The paper's model, image size and crop batch; batch 4 (not 16) keeps a CPU run to minutes.
        return Setting("dry-run", "resnet50", 448, 4, 64, None, repetitions=1, warmup=0, profile=False,
                       compile_backend=None, compiled_repetitions=1,
                       synthetic=dict(n_train=32, n_val=16, n_test=16), train_epochs=2,
                       train_max_batches=1, eval_max_batches=1, resume_max_batches=1,
                       workers=0, threads=None, budget_s=budget_s or 3600.0,
                       stage_limits={name: 3600.0 for name in STAGE_LIMITS},
                       resolution=dict(sizes=[448], seeds=[0], max_train=16, epochs=1),
                       controls=dict(sizes=[448], seeds=[0], max_train=16, epochs=1))
    if kind == "tiny":
        # A small FineFACE: ResNet-18 at 64 px with C_v = 32, otherwise the paper's profile.
        return Setting("tiny", "resnet18", 64, 8, 4, 32, repetitions=1, warmup=0, profile=False,
                       compile_backend="aot_eager", compiled_repetitions=1,  # traces, no code generated
                       synthetic=dict(n_train=16, n_val=8, n_test=8), train_epochs=5,
                       train_max_batches=None, eval_max_batches=None, resume_max_batches=1,
                       # one thread: tiny models on a few shared cores run ~10x slower with more
                       workers=0, threads=1, budget_s=budget_s or 300.0, stage_limits=dict(STAGE_LIMITS),
                       resolution=dict(sizes=[64], seeds=[0], max_train=16, epochs=1),
                       controls=dict(sizes=[64], seeds=[0], max_train=16, epochs=1))
    raise ValueError(f"unknown setting {kind!r}: use paper, tiny or dry-run")


# ----------------------------------------------------------------------------- stage machinery


class StageTimeout(Exception):
    """A stage ran past its time limit."""


class Skip(Exception):
    """A stage that cannot run here (no CUDA, a stage it needs did not succeed, no time left)."""


def outcome(ok: bool, summary: str, **details: Any) -> dict[str, Any]:
    """A check's result: status ``ok`` or ``failed``, a one-line summary, details for the JSON."""
    return {"status": "ok" if ok else "failed", "summary": summary, "details": details}


def done(summary: str, **details: Any) -> dict[str, Any]:
    """A measurement's result (nothing to fail but errors and time)."""
    return {"status": "ok", "summary": summary, "details": details}


def _alarm(signum, frame):
    raise StageTimeout()


class Check:
    """Runs the stages within the budget, records each, writes the outputs after every stage."""

    RESERVE_S = 8.0     # kept back from every stage for writing the outputs
    MIN_STAGE_S = 3.0   # a stage with less than this left is skipped

    def __init__(self, setting: Setting, out_dir: Path, work_dir: Path, log_file) -> None:
        self.setting = setting
        self.out_dir = out_dir
        self.work_dir = work_dir
        self.log_file = log_file
        self.started = time.monotonic()
        self.deadline = self.started + setting.budget_s
        self.cuda = torch.cuda.is_available()
        self.device = torch.device("cuda" if self.cuda else "cpu")
        self.project: SimpleNamespace | None = None
        self.shared: dict[str, Any] = {}
        self.current: str | None = None
        self.lock = threading.RLock()  # the results and the output files: main thread and watchdog
        self.results: dict[str, Any] = {
            "tool": "scripts/gpu_check.py",
            "schema": 1,
            "setting": dataclasses.asdict(setting),
            "device": str(self.device),
            "started": _now(),
            "finished": None,
            "budget_seconds": setting.budget_s,
            "wall_seconds": None,
            "environment": {},
            "stages": {},
        }

    # -- output
    def log(self, text: str) -> None:
        print(text, flush=True)
        if self.log_file is not None:
            self.log_file.write(text + "\n")
            self.log_file.flush()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def write(self) -> None:
        """``gpu_check.json`` and ``gpu_check.md`` in the output folder, each replaced atomically."""
        with self.lock:
            self.results["wall_seconds"] = round(time.monotonic() - self.started, 1)
            text = json.dumps(self.results, indent=1, default=_jsonable)
            _write_atomic(self.out_dir / "gpu_check.json", text + "\n")
            _write_atomic(self.out_dir / "gpu_check.md", markdown_report(json.loads(text)))

    # -- stages
    def run(self, name: str, function: Callable[["Check"], dict[str, Any]]) -> dict[str, Any]:
        left = self.remaining() - self.RESERVE_S
        limit = min(self.setting.stage_limits.get(name, 60.0), left)
        record: dict[str, Any] = {"status": None, "summary": "", "seconds": 0.0, "limit_seconds": round(limit, 1)}
        if left < self.MIN_STAGE_S:
            record.update(status="skipped", summary=f"skipped: out of time ({self.remaining():.0f} s of the budget left)")
            return self._record(name, record)
        self.log(f"\n== {name} (limit {limit:.0f} s, {self.remaining():.0f} s of the budget left)")
        self.current = name
        with self.lock:
            self.results["stages"][name] = {"status": "running", "summary": "", "limit_seconds": round(limit, 1)}
        start = time.monotonic()
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, limit)
        try:
            record.update(function(self))
        except StageTimeout:
            record.update(status="timeout", summary=f"timeout: stopped after its limit of {limit:.0f} s")
        except Skip as reason:
            record.update(status="skipped", summary=f"skipped: {reason}")
        except Exception as error:  # noqa: BLE001 - recorded; the next stage still runs
            record.update(status="error", summary=f"error: {type(error).__name__}: {_first_line(error)}",
                          error=traceback.format_exc()[-6000:])
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            self.current = None
        record["seconds"] = round(time.monotonic() - start, 2)
        return self._record(name, record)

    def _record(self, name: str, record: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.results["stages"][name] = record
        self.log(f"   {name}: {record['status']} ({record['seconds']:.1f} s) — {record['summary']}")
        if record.get("error"):
            self.log(record["error"].rstrip())
        self.write()
        return record

    def require(self, *stages: str) -> None:
        """Skip the running stage unless every named stage succeeded."""
        for stage in stages:
            status = self.results["stages"].get(stage, {}).get("status")
            if status != "ok":
                raise Skip(f"needs stage {stage!r}, which is {status or 'not run'}")

    def require_cuda(self) -> None:
        if not self.cuda:
            raise Skip("no CUDA (torch.cuda.is_available() is False)")

    def watchdog(self, grace_s: float = 20.0) -> None:
        """At budget + grace, record the running stage as killed, write everything, and exit."""
        def bite() -> None:
            time.sleep(max(self.deadline + grace_s - time.monotonic(), 0.0))
            with self.lock:
                if self.current is not None:
                    self.results["stages"][self.current] = {
                        "status": "timeout", "seconds": None,
                        "summary": "timeout: killed with the whole run at the end of the global budget"}
                self.results["finished"] = _now()
            try:
                self.write()
                self.log("\nglobal time budget exhausted: results written, exiting")
            finally:
                os._exit(3)

        threading.Thread(target=bite, daemon=True).start()


# ----------------------------------------------------------------------------- stage 1-2


def stage_environment(check: Check) -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "numpy": _version("numpy"),
        "pandas": _version("pandas"),
        "pillow": _version("PIL"),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_available": check.cuda,
        "cuda_runtime": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "absent_optional_packages": [p for p in OPTIONAL_PACKAGES if not _installed(p)],
    }
    if check.cuda:
        properties = torch.cuda.get_device_properties(0)
        name = torch.cuda.get_device_name(0)
        env.update(
            gpu=name, gpu_count=torch.cuda.device_count(), capability=f"{properties.major}.{properties.minor}",
            gpu_memory_gib=round(properties.total_memory / 2**30, 1), multiprocessors=properties.multi_processor_count,
            bf16_supported=torch.cuda.is_bf16_supported(), bf16_peak_tflops=bf16_peak_tflops(name),
            nvidia_smi=_nvidia_smi(),
        )
        env["bf16_matmul_tflops_measured"] = _matmul_rate(check.device)
    else:
        env.update(gpu=None, bf16_supported=None, bf16_peak_tflops=None, bf16_matmul_tflops_measured=None)
    with check.lock:
        check.results["environment"] = env
    for key, value in env.items():
        check.log(f"   {key}: {value}")
    peak = env["bf16_peak_tflops"]
    if not check.cuda:
        return done(f"no CUDA: CPU ({env['cpu_count']} cores), torch {env['torch']}")
    return done(f"{env['gpu']}, CUDA {env['cuda_runtime']}, torch {env['torch']}, bf16 "
                f"{'supported' if env['bf16_supported'] else 'NOT supported'}; bf16 peak "
                f"{f'{peak:.0f} TFLOP/s (datasheet)' if peak else 'unknown for this GPU'}, measured matmul "
                f"{env['bf16_matmul_tflops_measured']:.0f} TFLOP/s")


def _matmul_rate(device: torch.device, n: int = 8192, repeats: int = 10) -> float:
    """bf16 n×n×n matrix products on random data, TFLOP/s (CUDA events, after 3 warm-ups)."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        a @ b
    end.record()
    torch.cuda.synchronize(device)
    seconds = start.elapsed_time(end) / 1e3 / repeats
    del a, b
    return 2 * n**3 / seconds / 1e12


def _nvidia_smi() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        done_ = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.limit",
                                "--format=csv,noheader"], capture_output=True, text=True, timeout=15)
        return done_.stdout.strip() or done_.stderr.strip()
    except (OSError, subprocess.SubprocessError) as error:
        return f"nvidia-smi failed: {error}"


def stage_import(check: Check) -> dict[str, Any]:
    start = time.monotonic()
    check.project = import_project()
    seconds = time.monotonic() - start
    imported_optional = sorted(p for p in OPTIONAL_PACKAGES if sys.modules.get(p) is not None)
    from finefcace import __file__ as package_file

    return done(f"finefcace from {Path(package_file).parent} in {seconds:.1f} s; optional packages imported on "
                f"the way: {', '.join(imported_optional) or 'none'}",
                package=str(Path(package_file).parent), seconds=seconds, optional_imported=imported_optional)


# ----------------------------------------------------------------------------- stage 3: correctness


def stage_gpu_tests(check: Check) -> dict[str, Any]:
    """The ``gpu``-marked tests, through pytest in a subprocess, without the notebook plugins."""
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py")
                   if "mark.gpu" in p.read_text())
    if not files:
        return outcome(False, "no test file holds a gpu-marked test")
    report = check.work_dir / "gpu_tests.xml"
    # -o addopts= drops the repository's nbval options (nbval may be absent); -p no:nbval keeps it unloaded.
    command = [sys.executable, "-m", "pytest", *files, "-m", "gpu", "-o", "addopts=", "-p", "no:nbval",
               "-p", "no:cacheprovider", "--strict-markers", "-q", "-rA", f"--junitxml={report}"]
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    timeout = max(check.remaining() - check.RESERVE_S - 2, 5)
    timeout = min(timeout, check.setting.stage_limits["gpu_tests"] - 2)
    finished = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=timeout)
    output = (finished.stdout + finished.stderr).strip()
    check.log("\n".join("   | " + line for line in output.splitlines()[-40:]))
    counts, cases = _junit_counts(report)
    details = dict(command=" ".join(command), returncode=finished.returncode, counts=counts, tests=cases,
                   output_tail=output[-3000:])
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "no test ran"
    if not check.cuda:
        if finished.returncode == 0 and counts["failed"] == counts["errors"] == 0:
            raise Skip(f"no CUDA (pytest ran: {summary})")
        return outcome(False, f"pytest exit {finished.returncode} on a CPU: {summary}", **details)
    ok = finished.returncode == 0 and counts["passed"] > 0 and counts["failed"] == counts["errors"] == 0
    return outcome(ok, f"pytest -m gpu: {summary} (exit {finished.returncode})", **details)


def _junit_counts(path: Path) -> tuple[dict[str, int], list[dict[str, str]]]:
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    cases = []
    if not path.is_file():
        return counts, cases
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        result = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                result = {"failure": "failed", "error": "errors", "skipped": "skipped"}[child.tag]
                message = child.get("message", "")
                break
        else:
            message = ""
        counts[result] += 1
        cases.append({"test": f"{case.get('classname')}::{case.get('name')}", "result": result, "message": message[:300]})
    return counts, cases


def _paper_model_and_batch(check: Check):
    """A FineFACE of the setting's backbone and size in channels_last, its optimizer, a random
    batch (channels_last) and labels — shared by the correctness stages, built once."""
    if "model" not in check.shared:
        p, s = check.project, check.setting
        torch.manual_seed(0)
        sizes = {"descriptor_dim": s.descriptor_dim} if s.descriptor_dim else {}
        model = p.FineFACE.from_preset("paper", s.backbone, 2, **sizes).to(check.device, memory_format=torch.channels_last)
        model.train()
        images = torch.randn(s.batch, 3, s.input_size, s.input_size, device=check.device)
        check.shared["model"] = (model, p.build_optimizer(model, p.get_preset("paper")),
                                 images.contiguous(memory_format=torch.channels_last),
                                 torch.randint(2, (s.batch,), device=check.device))
    return check.shared["model"]


def _iteration(check: Check, **keywords: Any) -> dict[str, torch.Tensor]:
    """One Algorithm 1 iteration of the shared model in bf16 autocast (the paper preset's switches)."""
    p = check.project
    model, optimizer, images, labels = _paper_model_and_batch(check)
    preset = p.get_preset("paper")
    return p.finefcace_iteration(
        model, optimizer, images, labels, concat_loss_weight=preset["concat_loss_weight"],
        threshold=preset["threshold"], pad=preset["pad"], region_draw=preset["region_draw"],
        steps_forward=preset["steps_forward"], generator=torch.Generator().manual_seed(0),
        amp_dtype=torch.bfloat16, **keywords)


def stage_bf16_channels_last_iteration(check: Check) -> dict[str, Any]:
    check.require("import")
    model, _, images, _ = _paper_model_and_batch(check)
    stats: dict[str, Any] = {}
    losses = {name: float(value) for name, value in _iteration(check, stats=stats).items()}
    finite = all(math.isfinite(v) for v in losses.values())
    parameters_finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    float32 = all(p.dtype == torch.float32 for p in model.parameters())
    regions_channels_last = all(r.is_contiguous(memory_format=torch.channels_last)
                                for r in [*stats["regions"], stats["overall_region"]])
    ok = finite and parameters_finite and float32 and regions_channels_last
    shown = ", ".join(f"{k} {v:.3f}" for k, v in losses.items())
    return outcome(ok, f"{len(losses)} losses {'all finite' if finite else 'NOT all finite'} ({shown}); weights "
                   f"{'finite' if parameters_finite else 'NOT finite'}, float32 {float32}, regions channels_last "
                   f"{regions_channels_last}", losses=losses, parameters_finite=parameters_finite,
                   parameters_float32=float32, regions_channels_last=regions_channels_last,
                   images_channels_last=images.is_contiguous(memory_format=torch.channels_last))


ATTENTION_STEP = ("class_activation_maps", "regions_from_cams")


def stage_attention_no_host_sync(check: Check) -> dict[str, Any]:
    """The trainer's own attention step (CAMs, A_1..A_N, A_oval) inside a real bf16 iteration,
    run under ``set_sync_debug_mode("error")``: any device-to-host synchronisation raises."""
    check.require_cuda()
    check.require("import")
    attention = check.project.attention
    _iteration(check)  # warm-up: lazy initialisation may synchronise once
    torch.cuda.synchronize()
    originals = {name: getattr(attention, name) for name in ATTENTION_STEP}
    calls: list[str] = []

    def guarded(name: str, function: Callable) -> Callable:
        def run(*args: Any, **kwargs: Any) -> Any:
            previous = torch.cuda.get_sync_debug_mode()
            torch.cuda.set_sync_debug_mode("error")
            try:
                return function(*args, **kwargs)
            finally:
                torch.cuda.set_sync_debug_mode(previous)
                calls.append(name)
        return run

    try:
        for name, function in originals.items():
            setattr(attention, name, guarded(name, function))
        losses = _iteration(check)
        torch.cuda.synchronize()
    except RuntimeError as error:
        return outcome(False, f"the attention step synchronised with the host: {_first_line(error)}",
                       error=str(error)[:2000], calls=calls)
    finally:
        for name, function in originals.items():
            setattr(attention, name, function)
    syncs = check.project.measure.count_host_syncs(lambda: _iteration(check), check.device)
    ok = calls == list(ATTENTION_STEP) and all(math.isfinite(float(v)) for v in losses.values())
    return outcome(ok, f"{', '.join(calls)} ran under sync debug mode 'error' without a host sync; the whole "
                   f"iteration makes {syncs} synchronising call(s) (counted in 'warn' mode)",
                   guarded_calls=calls, whole_iteration_host_syncs=syncs)


def stage_crop_matches_reference(check: Check) -> dict[str, Any]:
    """Batched A_1..A_N and A_oval against the published structure's per-sample loop, on the
    device, at the crop batch, for random CAMs at the experts' resolutions (one constant CAM)."""
    check.require("import")
    p, s = check.project, check.setting
    generator = torch.Generator().manual_seed(1)
    size = s.input_size
    images = torch.randn(s.crop_batch, 3, size, size, generator=generator).to(check.device)
    cams = [torch.randn(s.crop_batch, size // stride, size // stride, generator=generator).to(check.device)
            for stride in (8, 16, 32)]
    cams[0][0] = 1.0  # a degenerate (constant) map: the whole image, in both
    preset = p.get_preset("paper")
    with torch.no_grad():
        batched = [*p.attention.attention_regions(images, cams, preset["threshold"], preset["pad"]),
                   p.attention.overall_region(images, cams, preset["threshold"], preset["pad"])]
    loop_regions, loop_overall = p.per_sample_regions(images, cams, preset["threshold"], preset["pad"])
    difference = max(float((a - b).abs().max()) for a, b in zip(batched, [*loop_regions, loop_overall]))
    tolerance = 1e-3  # float rounding (grid_sample vs interpolate); a box one pixel off differs by ~1
    return outcome(difference <= tolerance,
                   f"{len(batched)} region batches of {s.crop_batch} images at {size} px on {check.device}: "
                   f"max |batched − per-sample| = {difference:.2e} (tolerance {tolerance:g})",
                   max_abs_difference=difference, tolerance=tolerance, batch=s.crop_batch, device=str(check.device))


# ----------------------------------------------------------------------------- data and training


def stage_synthetic_data(check: Check) -> dict[str, Any]:
    check.require("import")
    s = check.setting
    root = check.work_dir / "synthetic"
    start = time.monotonic()
    table = check.project.generate_synthetic(root, size=s.input_size, seed=0, **s.synthetic)
    seconds = time.monotonic() - start
    check.shared["data"] = root
    counts = table["split"].value_counts().to_dict()
    return done(f"{len(table)} synthetic faces at {s.input_size} px rendered and written in {seconds:.1f} s "
                f"({len(table) / seconds:.0f} images/s): {counts}", images=len(table), splits=counts,
                seconds=seconds, root=str(root))


def _train_config(check: Check, run_dir: Path, **changes: Any):
    """The paper profile with synthetic data, no pretrained weights, this machine's device, the
    setting's model and sizes (the paper's, except for ``tiny``) and bounds."""
    s = check.setting
    root = check.shared["data"]
    overrides = {"descriptor_dim": s.descriptor_dim} if s.descriptor_dim else {}
    values = dict(table=str(root / "labels.csv"), root=str(root), synthetic=None, weights=None,
                  backbone=s.backbone, input_size=s.input_size, batch_size=s.batch, overrides=overrides,
                  device=str(check.device), workers=s.workers, run_dir=str(run_dir), progress=False,
                  overwrite=True, patience=None, save_predictions=True)
    values.update(changes)
    return check.project.load_config(PAPER_PROFILE, **values)


def stage_checkpoint_resume(check: Check) -> dict[str, Any]:
    """2 epochs uninterrupted vs stopped after batch 1 (checkpoint) and resumed: same final
    weights, momentum buffers and position, bit for bit (deterministic algorithms on)."""
    check.require("import", "synthetic_data")
    p, s = check.project, check.setting
    bounds = dict(epochs=2, max_batches=s.resume_max_batches, max_eval_batches=1, deterministic=True, seed=3)
    previous = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
                torch.backends.cudnn.benchmark)
    try:
        reference_dir, resumed_dir = check.work_dir / "resume_reference", check.work_dir / "resume_interrupted"
        for folder in (reference_dir, resumed_dir):  # a finished run left there would only be loaded
            shutil.rmtree(folder, ignore_errors=True)
        p.train_finefcace(_train_config(check, reference_dir, **bounds))
        stopped = p.train_finefcace(_train_config(check, resumed_dir, stop_after_batches=1, **bounds))
        saved_position = p.load_checkpoint(resumed_dir / "last.pt")["position"]
        resumed = p.train_finefcace(_train_config(check, resumed_dir, **bounds))
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous[1], previous[2]
    reference = p.load_checkpoint(reference_dir / "last.pt")
    final = p.load_checkpoint(resumed_dir / "last.pt")
    different = [k for k, v in reference["model"].items() if not torch.equal(v, final["model"][k])]
    momentum = [s_["momentum_buffer"] for s_ in reference["optimizer"]["state"].values()]
    momentum_resumed = [s_["momentum_buffer"] for s_ in final["optimizer"]["state"].values()]
    momentum_equal = len(momentum) == len(momentum_resumed) and all(
        torch.equal(a, b) for a, b in zip(momentum, momentum_resumed))
    ok = (not stopped.finished and resumed.finished and not different and momentum_equal
          and reference["position"] == final["position"])
    return outcome(ok, f"stopped at {saved_position}, resumed to {final['position']}: "
                   f"{len(reference['model']) - len(different)}/{len(reference['model'])} tensors and "
                   f"{'all' if momentum_equal else 'NOT all'} momentum buffers bit-identical to the uninterrupted run",
                   stopped_position=saved_position, final_position=final["position"],
                   reference_position=reference["position"], tensors_differing=different[:20],
                   momentum_identical=momentum_equal)


def stage_training(check: Check) -> dict[str, Any]:
    """The paper profile, bounded, on the rendered faces: loss falls, checkpoints, evaluation."""
    check.require("import", "synthetic_data")
    p, s = check.project, check.setting
    run_dir = check.work_dir / "paper_profile_run"
    shutil.rmtree(run_dir, ignore_errors=True)  # a finished run left there would only be loaded
    config = _train_config(check, run_dir, epochs=s.train_epochs, max_batches=s.train_max_batches,
                           max_eval_batches=s.eval_max_batches)
    result = p.train_finefcace(config)
    history = result.history
    step_columns = [c for c in history.columns if c.startswith("loss_")]  # the N + 2 steps, in order
    # Steps 1 (e_N) and N + 2 (the concatenation) see the raw images, the same ones every epoch;
    # the other steps train on attention regions that move as the CAMs change, so their losses
    # are not comparable between epochs: whether the loss falls is read on the raw-input steps.
    raw_columns = [step_columns[0], step_columns[-1]]
    resolved = config.resolved()
    batch = resolved["batch_size"]
    epochs = [{"epoch": int(row["epoch"]), "batches": int(row["batches"]),
               "loss_raw_steps": float(sum(row[c] for c in raw_columns)),
               "loss_all_steps": float(sum(row[c] for c in step_columns)),
               "train_accuracy": float(row["train_accuracy"]), "val_accuracy": float(row["val_accuracy"]),
               "val_loss": float(row["val_loss"]), "seconds": float(row["epoch_seconds"]),
               "images_per_second": row["batches"] * batch / row["epoch_seconds"] if row["epoch_seconds"] else None}
              for _, row in history.iterrows()]
    first, last = epochs[0]["loss_raw_steps"], epochs[-1]["loss_raw_steps"]
    checkpoints = {name: (run_dir / name).stat().st_size for name in ("last.pt", "best.pt") if (run_dir / name).is_file()}
    reloaded = p.evaluate_run(run_dir, device=str(check.device))  # best.pt from disk, fused inference on test
    reloaded_accuracy = float((reloaded["y_true"] == reloaded["y_pred"]).mean())
    ok = (last < first and len(checkpoints) == 2 and result.finished and "test_accuracy" in result.summary
          and len(reloaded) > 0)
    summary = (f"{resolved['backbone']}, {resolved['input_size']} px, batch {batch}, {len(epochs)} epochs of "
               f"{epochs[0]['batches']} batches (SYNTHETIC faces, from scratch): loss on the raw images "
               f"({' + '.join(raw_columns)}) {first:.3f} → {last:.3f} ({'falls' if last < first else 'does NOT fall'}); checkpoints {sorted(checkpoints)}; test "
               f"accuracy {result.summary.get('test_accuracy', float('nan')):.3f}, again from best.pt: "
               f"{reloaded_accuracy:.3f} on {len(reloaded)} images")
    return outcome(ok, summary, epochs=epochs, loss_first_epoch=first, loss_last_epoch=last, loss_columns=raw_columns,
                   checkpoint_bytes=checkpoints, summary_json=result.summary,
                   amp="bf16" if (config.amp if config.amp is not None else check.cuda) else "off",
                   channels_last=config.channels_last, resolved={k: resolved[k] for k in (
                       "backbone", "input_size", "batch_size", "head_lr", "backbone_lr", "descriptor_dim")},
                   reloaded_test_accuracy=reloaded_accuracy, reloaded_rows=len(reloaded))


# ----------------------------------------------------------------------------- stage 6: studies on real photographs


#: The script of each study stage, and how many arms it trains per size.
STUDY_SCRIPTS = {"resolution": ("experiments/resolution.py", 2), "controls": ("experiments/controls.py", 5)}


def study_command(check: Check, utkface: Path, study: str = "resolution") -> list[str]:
    """A study on real photographs (``experiments/resolution.py`` or ``experiments/controls.py``)
    at this setting's sizes on ``utkface``, trained only (this machine may lack the metrics
    packages): runs in the work folder."""
    r = getattr(check.setting, study)
    script, _ = STUDY_SCRIPTS[study]
    return [sys.executable, str(ROOT / script), "--utkface", str(utkface),
            "--fairface", "none", "--celeba", "none", "--sizes", *map(str, r["sizes"]),
            "--seeds", *map(str, r["seeds"]), "--max-train", str(r["max_train"]), "--epochs", str(r["epochs"]),
            "--val-fraction", "0.05", "--test-fraction", "0.1", "--device", str(check.device),
            "--runs-root", str(check.work_dir / study), "--train-only"]


#: What comes back of each run of the study: everything but the model files (and the image cache).
RUN_FILES = ("*.csv", "*.json")


def _study_stage(check: Check, study: str) -> dict[str, Any]:
    """Train a study on real photographs (``--utkface``); its runs' predictions, summaries and
    attention-crop measures (no model files) copied to ``<out>/<study>/runs``, where the study's
    script with ``--saved-runs`` reports them on a machine with the metrics packages."""
    utkface = check.shared.get("utkface")
    if utkface is None:
        raise Skip("no --utkface folder given (real UTKFace photographs: scripts/photo_subset.py makes a carryable subset)")
    check.require("import")
    out = check.out_dir / study
    out.mkdir(parents=True, exist_ok=True)
    runs = check.work_dir / study
    command = study_command(check, Path(utkface), study)
    with open(out / f"{study}.log", "w") as log:
        try:
            status = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                    timeout=max(check.remaining() - check.RESERVE_S, 1.0)).returncode
        except subprocess.TimeoutExpired:
            raise StageTimeout() from None
    copied = []
    for summary in sorted(runs.glob("*/seed*/summary.json")):
        target = out / "runs" / summary.parent.relative_to(runs)
        target.mkdir(parents=True, exist_ok=True)
        for pattern in RUN_FILES:
            for file in summary.parent.glob(pattern):
                OUTPUTS.copy_file(file, target / file.name)
        copied.append((summary.parent.relative_to(runs), json.loads(summary.read_text())))
    if (runs / "tables").is_dir():
        shutil.copytree(runs / "tables", out / "runs" / "tables", dirs_exist_ok=True)
    setting = getattr(check.setting, study)
    script, arms_per_size = STUDY_SCRIPTS[study]
    expected = len(setting["sizes"]) * arms_per_size * len(setting["seeds"])
    parts = [f"{name}: test accuracy {summary.get('test_accuracy', float('nan')):.3f}" for name, summary in copied]
    report = (f"python {script} --saved-runs --runs-root <out>/{study}/runs --results <folder> "
              + " ".join(command[2:command.index("--device")]))
    ok = status == 0 and len(copied) == expected
    return outcome(ok, f"{len(copied)} of {expected} runs trained (exit status {status}): " + "; ".join(parts)
                   + f". Report them where fairlearn is installed: {report}", status=status, report_command=report)


def stage_resolution(check: Check) -> dict[str, Any]:
    """The input-size study (``experiments/resolution.py``): FineFACE and the baseline at the
    setting's input sizes (:func:`_study_stage`)."""
    return _study_stage(check, "resolution")


def stage_controls(check: Check) -> dict[str, Any]:
    """The region controls (``experiments/controls.py``): the baseline, FineFACE, the baseline with
    FineFACE's updates, FineFACE with no regions and with placebo regions, at the setting's size
    (:func:`_study_stage`)."""
    return _study_stage(check, "controls")


# ----------------------------------------------------------------------------- stage 4: measurement


def bench_config(check: Check, **changes: Any):
    """The benchmark setting of this check: the paper's (bf16, channels_last) at the setting's sizes."""
    s = check.setting
    values = dict(name=f"gpu-check-{s.name}", backbone=s.backbone, input_size=s.input_size, batch=s.batch,
                  crop_batch=s.crop_batch, descriptor_dim=s.descriptor_dim, repetitions=s.repetitions,
                  warmup=s.warmup, device=str(check.device), profile=s.profile)
    return dataclasses.replace(check.project.CONFIGS["paper"], **{**values, **changes})


def throughput_row(name: str, seconds: float, images: int, flops: int | None, peak: float | None) -> dict[str, Any]:
    """images/s, achieved TFLOP/s and MFU (against ``peak`` TFLOP/s, None when unknown) of one workload."""
    tflops = flops / seconds / 1e12 if flops else None
    return {"workload": name, "median_seconds": seconds, "images": images, "images_per_second": images / seconds,
            "flops": flops, "tflops": tflops, "mfu": tflops / peak if tflops is not None and peak else None}


def stage_measurement(check: Check) -> dict[str, Any]:
    check.require("import")
    check.shared.pop("model", None)  # the correctness stages' model: free its memory first
    if check.cuda:
        torch.cuda.empty_cache()
    config = bench_config(check)
    results = check.project.run_benchmark(config, log=check.log)
    peak = check.results["environment"].get("bf16_peak_tflops")
    measured = check.results["environment"].get("bf16_matmul_tflops_measured")
    rows = []
    for name, workload in results["workloads"].items():
        images = config.crop_batch if name.startswith("crop_") else config.batch
        row = throughput_row(name, workload["seconds"]["median"], images, workload.get("flops"), peak)
        row.update(quartiles=[workload["seconds"]["q1"], workload["seconds"]["q3"]],
                   peak_memory_bytes=workload.get("peak_memory_bytes"), host_syncs=workload.get("host_syncs"),
                   share_of_measured_matmul=row["tflops"] / measured if row["tflops"] and measured else None)
        rows.append(row)
    check.shared["measurement"] = {row["workload"]: row for row in rows}
    targets = {name: dict(target, label=check.project.TARGET_LABELS.get(name, name))
               for name, target in results["targets"].items()}
    met = sum(t["met"] for t in targets.values())
    mfu = check.shared["measurement"]["finefcace_train"]["mfu"]
    return done(f"{check.project.describe_setting(config, check.device)}: FineFACE iteration "
                f"{check.shared['measurement']['finefcace_train']['images_per_second']:.1f} images/s, "
                f"MFU {'unknown' if mfu is None else f'{mfu:.1%}'}; targets met {met}/{len(targets)}",
                throughput=rows, targets=targets, comparisons=results["comparisons"],
                steps=results["step_breakdown"]["steps"], crop=results["crop"],
                top_operators=results["top_operators"], benchmark_config=results["config"],
                memory_method=results["memory_method"], flop_counter=results["flop_counter"])


COMPILED_WORKLOADS = ("baseline_train", "finefcace_train", "baseline_infer", "fused_infer")


def stage_measurement_compiled(check: Check) -> dict[str, Any]:
    """The iterations and inference with every block under ``torch.compile`` (FLOPs from the
    eager measurement: the arithmetic is the same)."""
    check.require("import", "measurement")
    s, p = check.setting, check.project
    if s.compile_backend is None:
        raise Skip(f"setting {s.name!r} does not compile")
    config = bench_config(check, compile=s.compile_backend, repetitions=s.compiled_repetitions, warmup=1)
    bench = p.build_workbench(config)
    workloads = {name: bench.plain[name] for name in COMPILED_WORKLOADS}
    first_calls = {}
    for name, workload in workloads.items():  # the first call compiles
        first_calls[name] = p.measure.time_call(workload, bench.device)
        check.log(f"   first call of {name} (compiles): {first_calls[name]:.1f} s")
    times = p.measure.interleaved_times(workloads, bench.device, repetitions=config.repetitions, warmup=config.warmup,
                                        progress=lambda line: check.log("   " + line))
    peak = check.results["environment"].get("bf16_peak_tflops")
    eager = check.shared["measurement"]
    rows = []
    for name, values in times.items():
        row = throughput_row(name, p.measure.summary(values)["median"], config.batch, eager[name]["flops"], peak)
        row["speedup_over_eager"] = eager[name]["median_seconds"] / row["median_seconds"]
        row["first_call_seconds"] = first_calls[name]
        rows.append(row)
    check.shared["compiled"] = {row["workload"]: row for row in rows}
    train = check.shared["compiled"]["finefcace_train"]
    return done(f"torch.compile ({s.compile_backend}): FineFACE iteration {train['images_per_second']:.1f} images/s "
                f"({train['speedup_over_eager']:.2f}× eager; compiling took {sum(first_calls.values()):.0f} s)",
                throughput=rows, backend=s.compile_backend, first_call_seconds=first_calls,
                note="speed-ups compare with the eager stage's medians, measured minutes apart in the same run")


STAGES: tuple[tuple[str, Callable[[Check], dict[str, Any]]], ...] = (
    ("environment", stage_environment),
    ("import", stage_import),
    ("gpu_tests", stage_gpu_tests),
    ("bf16_channels_last_iteration", stage_bf16_channels_last_iteration),
    ("attention_no_host_sync", stage_attention_no_host_sync),
    ("crop_matches_reference", stage_crop_matches_reference),
    ("synthetic_data", stage_synthetic_data),
    ("checkpoint_resume", stage_checkpoint_resume),
    ("measurement", stage_measurement),
    ("training", stage_training),
    ("measurement_compiled", stage_measurement_compiled),
    ("resolution", stage_resolution),
    ("controls", stage_controls),
)


# ----------------------------------------------------------------------------- the report


STAGE_LABELS = {
    "environment": "Environment",
    "import": "Project imported from the source tree",
    "gpu_tests": "`gpu`-marked tests (pytest)",
    "bf16_channels_last_iteration": "Algorithm 1 iteration, bf16 + channels_last",
    "attention_no_host_sync": "Attention step with no host sync",
    "crop_matches_reference": "Batched crop = per-sample loop",
    "synthetic_data": "Synthetic faces rendered",
    "checkpoint_resume": "Checkpoint resumes bit-identically",
    "measurement": "Measurement (eager)",
    "training": "Paper-profile training (synthetic)",
    "measurement_compiled": "Measurement (torch.compile)",
    "resolution": "Resolution study (real photographs)",
    "controls": "Region controls (real photographs)",
}

WORKLOAD_LABELS = {
    "baseline_train": "Baseline training iteration",
    "finefcace_train": "FineFACE training iteration (Algorithm 1)",
    "finefcace_all_heads_train": "FineFACE, every head in every step",
    "published_train": "Published structure (all heads, per-sample crops)",
    "baseline_infer": "Baseline inference",
    "fused_infer": "FineFACE fused inference",
    "crop_batched": "Attention crop, batched",
    "crop_per_sample": "Attention crop, per-sample loop",
}


def _percent(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.1%}"


def _number(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def markdown_report(results: dict[str, Any]) -> str:
    """The Markdown tables of a results dictionary (what ``gpu_check.md`` holds)."""
    env, stages, setting = results["environment"], results["stages"], results["setting"]
    gpu = env.get("gpu")
    where = (f"{gpu} (CUDA {env.get('cuda_runtime')}, {env.get('gpu_memory_gib')} GiB)" if gpu
             else f"a CPU ({env.get('cpu_count', '?')} cores; no CUDA)")
    lines = ["<!-- Generated by `python scripts/gpu_check.py`; do not edit by hand. -->", ""]
    lines.append(f"**GPU check, setting `{setting['name']}`** on {where}, torch {env.get('torch', '?')}, "
                 f"torchvision {env.get('torchvision', '?')}, Python {env.get('python', '?')}; started "
                 f"{results['started']}, {results['wall_seconds']} s of a {results['budget_seconds']:.0f} s budget."
                 + ("" if gpu else " **A CPU rehearsal, not a GPU measurement.**"))
    lines.append("")
    lines += ["| Stage | Result | Seconds | What it found |", "|---|---|---|---|"]
    for name, record in stages.items():
        seconds = record.get("seconds")
        lines.append(f"| {STAGE_LABELS.get(name, name)} | {record['status']} | "
                     f"{'—' if seconds is None else f'{seconds:.1f}'} | {_cell(record.get('summary', ''))} |")
    lines.append("")
    measurement = stages.get("measurement", {}).get("details")
    if measurement:
        compiled = {r["workload"]: r for r in stages.get("measurement_compiled", {}).get("details", {}).get("throughput", [])}
        config = measurement["benchmark_config"]
        peak = env.get("bf16_peak_tflops")
        lines.append(f"Throughput at {config['backbone']}, {config['input_size']} px, batch {config['batch']} "
                     f"(crops: batch {config['crop_batch']}), {'bf16 autocast, ' if config['amp'] else ''}"
                     f"{'channels_last, ' if config['channels_last'] else ''}{config['repetitions']} interleaved "
                     f"repetitions after {config['warmup']} warm-up; random inputs. MFU: achieved TFLOP/s (FLOPs of "
                     f"matrix products and convolutions, forward + backward, counted by FlopCounterMode) over the "
                     f"GPU's bf16 dense peak ({f'{peak:.0f} TFLOP/s, datasheet' if peak else 'unknown here'}).")
        lines.append("")
        header = "| Workload | Images/s | Median ms [q1–q3] | GFLOPs | TFLOP/s | MFU | Peak memory (MiB) | Host syncs |"
        rule = "|---|---|---|---|---|---|---|---|"
        if compiled:
            header += " Compiled images/s (× eager) |"
            rule += "---|"
        lines += [header, rule]
        for row in measurement["throughput"]:
            name = row["workload"]
            if name == "finefcace_train_marked":
                continue
            q1, q3 = row["quartiles"]
            memory = row.get("peak_memory_bytes")
            line = (f"| {WORKLOAD_LABELS.get(name, name)} | {_number(row['images_per_second'])} | "
                    f"{row['median_seconds'] * 1e3:.1f} [{q1 * 1e3:.1f}–{q3 * 1e3:.1f}] | "
                    f"{_number(row['flops'] / 1e9 if row['flops'] else None)} | "
                    f"{_number(row['tflops'], 1 if (row['tflops'] or 0) >= 10 else 3)} | "
                    f"{_percent(row['mfu']) if row['flops'] else '—'} | "
                    f"{_number(memory / 2**20 if memory else None, 0)} | "
                    f"{'—' if row.get('host_syncs') is None else row['host_syncs']} |")
            if compiled:
                c = compiled.get(name)
                line += (f" {_number(c['images_per_second'])} ({c['speedup_over_eager']:.2f}×) |" if c else " — |")
            lines.append(line)
        lines.append("")
        lines += ["| Goal | Measured | Target | Met |", "|---|---|---|---|"]
        for name, target in measurement["targets"].items():
            sign = {"max": "≤", "min": "≥", "max_exclusive": "<"}[target["direction"]]
            lines.append(f"| {target.get('label', name)} | {target['value']:.3f} | {sign} {target['limit']} | "
                         f"{'yes' if target['met'] else '**no**'} |")
        train = next((r for r in measurement["throughput"] if r["workload"] == "finefcace_train"), None)
        if train:
            lines.append(f"| MFU of a FineFACE training iteration | {_percent(train['mfu'])} | reported | — |")
        lines.append("")
    training = stages.get("training", {}).get("details")
    if training and training.get("epochs"):
        r = training["resolved"]
        lines.append(f"Paper-profile training on SYNTHETIC faces, from scratch: {r['backbone']}, {r['input_size']} px, "
                     f"batch {r['batch_size']}, C_v = {r['descriptor_dim']}, learning rates {r['head_lr']} (heads) / "
                     f"{r['backbone_lr']} (backbone), autocast {training['amp']}, channels_last {training['channels_last']}.")
        lines.append("")
        lines += [f"| Epoch | Batches | Loss on the raw images ({' + '.join(training['loss_columns'])}) | "
                  "Loss, all N + 2 steps | Train accuracy | Val accuracy | Images/s |", "|---|---|---|---|---|---|---|"]
        for e in training["epochs"]:
            lines.append(f"| {e['epoch']} | {e['batches']} | {e['loss_raw_steps']:.3f} | {e['loss_all_steps']:.3f} | "
                         f"{e['train_accuracy']:.3f} | {e['val_accuracy']:.3f} | {_number(e['images_per_second'])} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# ----------------------------------------------------------------------------- helpers and main


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else ""


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _version(module: str) -> str | None:
    try:
        return getattr(__import__(module), "__version__", None)
    except ImportError:
        return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _outputs_module():
    """:mod:`finefcace.outputs` (the one way every output file is written: whole or not at all),
    loaded from its file: it needs only the standard library, and importing the package is a
    stage of its own (``import``) that may fail."""
    spec = importlib.util.spec_from_file_location("_finefcace_outputs", ROOT / "finefcace" / "outputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


OUTPUTS = _outputs_module()


def _write_atomic(path: Path, text: str) -> None:
    """``text`` to ``path``, whole or not at all (:func:`finefcace.outputs.write_text`)."""
    OUTPUTS.write_text(path, text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--tiny", action="store_true", help="small backbone, small images, a few batches (CPU, CI)")
    kind.add_argument("--dry-run", action="store_true",
                      help="the paper's model and image size at batch 4, every repetition and batch count at its minimum")
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json, .md and .log")
    parser.add_argument("--budget", type=float, help="global time budget in seconds (default: 420 for the GPU run, "
                                                     "300 for --tiny, 3600 for --dry-run)")
    parser.add_argument("--only", help="comma-separated stages to run (default: all): "
                                       + ", ".join(name for name, _ in STAGES))
    parser.add_argument("--utkface", type=Path, help="a UTKFace folder (official layout; e.g. the subset "
                                                     "scripts/photo_subset.py makes): adds the resolution study "
                                                     "and its 300 s to the default budget")
    parser.add_argument("--work", type=Path, help="folder for the rendered faces and training runs "
                                                  "(default: a temporary folder, removed at the end)")
    args = parser.parse_args(argv)
    if args.only:
        unknown = set(args.only.split(",")) - {name for name, _ in STAGES}
        if unknown:
            parser.error(f"--only: unknown stage(s) {sorted(unknown)}; choose from {[n for n, _ in STAGES]}")
    if args.budget is not None and args.budget <= 0:
        parser.error(f"--budget must be positive, got {args.budget}")
    check_folders(args)
    return args


#: A UTKFace file name (labels in it): what ``--utkface`` must hold, as the adapter reads it.
UTKFACE_NAME = re.compile(r"^\d{1,3}_[01]_[0-4]_\d+\.jpg(?:\.chip\.jpg)?$", re.IGNORECASE)


def refuse(message: str) -> None:
    """Bad input, before any stage runs: one line ``error: ...``, exit status 2 (the project's
    error policy, :mod:`finefcace.errors`, whose package is not imported yet here)."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def check_folders(args: argparse.Namespace) -> None:
    """The folders the command names, checked before the first stage: ``--out`` and ``--work``
    folders that can be written (not files), ``--utkface`` a UTKFace download holding labelled
    photographs (``UTKFace/<age>_<gender>_<race>_<datetime>.jpg.chip.jpg``), so that a wrong
    folder is refused at once and not after the other stages' minutes."""
    for option, folder in (("--out", args.out), ("--work", args.work)):
        if folder is None:
            continue
        if folder.exists() and not folder.is_dir():
            refuse(f"{option} {folder} is a file; give a folder (it is created when missing)")
        existing = next((p for p in (folder, *folder.absolute().parents) if p.exists()), None)
        try:
            if existing is None or not existing.is_dir():
                raise NotADirectoryError(20, "not a folder", str(existing))
            with tempfile.TemporaryFile(dir=existing):
                pass
        except OSError as error:
            refuse(f"{option} {folder} cannot be written ({error.strerror or error} in {existing}); give a folder "
                   "you can write to")
    if args.utkface is not None:
        if not args.utkface.is_dir():
            refuse(f"--utkface {args.utkface} is not a folder; give a UTKFace download (scripts/photo_subset.py "
                   "makes a carryable subset)")
        images = args.utkface / "UTKFace" if (args.utkface / "UTKFace").is_dir() else args.utkface
        if not any(UTKFACE_NAME.match(name) for name in os.listdir(images)):
            refuse(f"--utkface {args.utkface} holds no UTKFace photographs (expected "
                   "UTKFace/<age>_<gender>_<race>_<datetime>.jpg.chip.jpg); give a UTKFace download or the subset "
                   "scripts/photo_subset.py makes")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setting = make_setting("tiny" if args.tiny else "dry-run" if args.dry_run else "paper", args.budget)
    if args.utkface is not None and args.budget is None:  # the studies' time comes on top of the default budget
        setting.budget_s += sum(setting.stage_limits[name] for name in STUDY_STAGES)
    args.out.mkdir(parents=True, exist_ok=True)
    work_dir = args.work or Path(tempfile.mkdtemp(prefix="gpu_check_"))
    work_dir.mkdir(parents=True, exist_ok=True)
    selected = set(args.only.split(",")) if args.only else None
    if setting.threads is not None:
        torch.set_num_threads(setting.threads)
    with open(args.out / "gpu_check.log", "w") as log_file:
        check = Check(setting, args.out, work_dir, log_file)
        if args.utkface is not None:
            check.shared["utkface"] = args.utkface.resolve()
        check.log(f"gpu_check: setting {setting.name}, device {check.device}, budget {setting.budget_s:.0f} s, "
                  f"output {args.out}, work {work_dir}")
        check.watchdog()
        for name, function in STAGES:
            if selected is None or name in selected or name in ("environment", "import"):
                check.run(name, function)
        with check.lock:
            check.results["finished"] = _now()
        check.write()
        check.log("\n" + (args.out / "gpu_check.md").read_text())
        bad = [n for n, r in check.results["stages"].items() if r["status"] in ("failed", "error", "timeout")]
        check.log(f"wrote {args.out / 'gpu_check.json'}, {args.out / 'gpu_check.md'} and {args.out / 'gpu_check.log'}; "
                  + (f"NOT all well: {', '.join(bad)}" if bad else "no stage failed"))
    if args.work is None:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # no waiting on compile workers or loader threads left behind
