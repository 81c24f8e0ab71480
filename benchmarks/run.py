"""What FineFACE costs: training and inference, measured side by side against the baseline,
the FLOP count and the published code's structure.

Run (from the repository root)::

    python benchmarks/run.py                       # cpu-small: ResNet-18, 112 px, batch 8
    python benchmarks/run.py --config cpu-r50      # ResNet-50, 224 px, batch 4
    python benchmarks/run.py --config paper        # ResNet-50, 448 px, batch 16, CUDA, bf16, channels_last
    python benchmarks/run.py --config cpu-convnext # ConvNeXt-T, 224 px, batch 4 (paper §6: other backbones)
    python benchmarks/run.py --config cpu-swin     # Swin-T (hierarchical transformer), 224 px, batch 4
    python benchmarks/run.py --config paper-swin   # Swin-T at the paper's setting (CUDA); also paper-convnext
    python benchmarks/run.py --backbone resnet34 --input-size 96 --batch 4
    python benchmarks/run.py --methods             # every training method per iteration: benchmarks/methods.py

Every workload runs once per repetition, interleaved (the order rotates), after warm-up
repetitions; ratios are taken per repetition and summarised by their median and quartiles
(:mod:`benchmarks.measure`). The workloads:

- ``baseline_train`` / ``finefcace_train``: the real :func:`finefcace.mutual_learning.baseline_iteration`
  and :func:`finefcace.mutual_learning.finefcace_iteration` (preset ``paper``: step n forwards only
  expert e_n), with the FineFACE iteration split into its N + 2 steps and the attention
  computation (CAMs, A_1..A_N, A_oval);
- ``finefcace_all_heads_train``: the same trainer with ``steps_forward="all_heads"`` (every
  head in every step, as the published code; attention still batched);
- ``published_train``: the published code's structure (every head in every step *and*
  per-sample attention with host reads), :mod:`benchmarks.reference`;
- ``baseline_infer`` / ``fused_infer``: the baseline's forward vs
  :func:`finefcace.predict.fused_logits` (raw view + A_oval, all heads);
- ``crop_batched`` / ``crop_per_sample``: A_1..A_N and A_oval from given CAMs, batched
  (:mod:`finefcace.attention`) vs the per-sample loop, at ``--crop-batch`` images (64).

Inputs are random tensors and random labels (K = 2), not faces: the cost of every step is
independent of the pixel values (box sizes change only which pixels the crop reads).

Writes ``benchmarks/results/<name>.json`` and regenerates ``benchmarks/results/cost_table.md``
(from every results file there), which the book's cost chapter includes. ``--methods`` measures
instead the training iteration of every method (the baseline, FineFACE, the bias-mitigation
methods of ``finefcace.mitigation``) and writes ``benchmarks/results/methods/`` (:mod:`benchmarks.methods`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import measure, methods  # noqa: E402
from benchmarks.reference import per_sample_regions, published_structure_iteration  # noqa: E402
from finefcace import attention, outputs  # noqa: E402
from finefcace.model import Baseline, FineFACE  # noqa: E402
from finefcace.mutual_learning import baseline_iteration, finefcace_iteration, step_names  # noqa: E402
from finefcace.predict import fused_logits  # noqa: E402
from finefcace.presets import get_preset  # noqa: E402
from finefcace.training.recipe import build_optimizer, compile_in_place  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TABLE_FILE = "cost_table.md"

#: Workloads whose FLOPs, peak memory and host syncs are counted (the crops are compared by time only).
FLOP_WORKLOADS = ("baseline_train", "finefcace_train", "finefcace_all_heads_train", "published_train",
                  "baseline_infer", "fused_infer")

#: What an efficient implementation should achieve, checked on every run: name -> (limit,
#: direction). The cost chapter's tables show each as "what a good implementation does".
TARGETS = {
    "train_time_over_flop_ratio": (1.10, "max"),
    "inference_time_over_flop_ratio": (1.10, "max"),
    "crop_speedup": (20.0, "min"),
    "crop_share_of_iteration": (0.03, "max"),
    "finefcace_over_published_time": (1.0, "max_exclusive"),
}


@dataclasses.dataclass
class BenchConfig:
    """One benchmark setting. Presets in :data:`CONFIGS`; every field can be overridden on the CLI."""

    name: str
    backbone: str
    input_size: int
    batch: int
    crop_batch: int = 64
    repetitions: int = 5
    warmup: int = 1
    device: str = "cpu"
    amp: bool = False            # bf16 autocast (GPU)
    channels_last: bool = False  # model and images in channels_last (GPU)
    preset: str = "paper"        # model switches, λ, threshold, pad, region draw
    num_classes: int = 2
    seed: int = 0
    threads: int | None = None   # torch.set_num_threads (CPU); None = torch's default
    profile: bool = True         # record torch.profiler top operators
    descriptor_dim: int | None = None  # C_v; None = the preset's (1024)
    compile: str | None = None   # torch.compile backend for the models' blocks (None: eager); used by
                                 # scripts/gpu_check.py for timings only (FLOPs are counted eagerly)


CONFIGS: dict[str, BenchConfig] = {
    "tiny": BenchConfig("tiny", "resnet18", 64, 2, crop_batch=4, repetitions=1, warmup=0),
    "cpu-small": BenchConfig("cpu-small", "resnet18", 112, 8, repetitions=7, warmup=2),
    "cpu-r50": BenchConfig("cpu-r50", "resnet50", 224, 4, repetitions=5, warmup=1),
    # The paper's future work (§6): modern backbones, each against its own baseline, beside cpu-r50
    # (same size and batch; ConvNeXt-T and Swin-T cost about what ResNet-50 costs per image).
    # 224 px = 32 x 7: every Swin stage map is a whole number of its 7x7 windows (no padding).
    "cpu-convnext": BenchConfig("cpu-convnext", "convnext_tiny", 224, 4, repetitions=5, warmup=1),
    "cpu-swin": BenchConfig("cpu-swin", "swin_t", 224, 4, repetitions=5, warmup=1),
    "paper": BenchConfig("paper", "resnet50", 448, 16, repetitions=10, warmup=3, device="cuda",
                         amp=True, channels_last=True),
    "paper-convnext": BenchConfig("paper-convnext", "convnext_tiny", 448, 16, repetitions=10, warmup=3,
                                  device="cuda", amp=True, channels_last=True),
    "paper-swin": BenchConfig("paper-swin", "swin_t", 448, 16, repetitions=10, warmup=3, device="cuda",
                              amp=True, channels_last=True),
}


# ----------------------------------------------------------------------------- step breakdown


class StepRecorder:
    """Seconds (and, with ``flops``, FLOPs) of each of the N + 2 steps of one real
    :func:`~finefcace.mutual_learning.finefcace_iteration`, and of its attention computation.

    Step boundaries come from the trainer's ``on_step`` hook (called after each optimizer
    step); the attention computation is bracketed by wrapping the two
    :mod:`finefcace.attention` functions the trainer calls (the CAMs, then every region), only while :meth:`recording`.
    Each boundary synchronises the device (no-op on CPU).
    """

    WRAPPED = ("class_activation_maps", "regions_from_cams")

    def __init__(self, device: torch.device, num_experts: int) -> None:
        self.device = device
        self.names = step_names(num_experts)
        self.history: list[dict[str, float]] = []
        self.flops: dict[str, int] | None = None
        self._marks: measure.FlopMarks | None = None

    def _mark(self, label: str) -> None:
        measure.synchronize(self.device)
        now = time.perf_counter()
        self._current[label] = self._current.get(label, 0.0) + now - self._last
        self._last = now
        if self._marks is not None:
            self._marks.mark(label)

    def on_step(self, info: dict[str, Any]) -> None:
        self._mark(info["name"])
        self._step += 1

    @contextlib.contextmanager
    def recording(self, count_flops: bool = False):
        originals = {name: getattr(attention, name) for name in self.WRAPPED}

        def wrap(function: Callable) -> Callable:
            def timed(*args: Any, **kwargs: Any) -> Any:
                self._mark(self.names[self._step])  # the step's own work so far
                result = function(*args, **kwargs)
                self._mark("attention")
                return result
            return timed

        self._current: dict[str, float] = {}
        self._step = 0
        marks = measure.FlopMarks() if count_flops else contextlib.nullcontext()
        try:
            for name, function in originals.items():
                setattr(attention, name, wrap(function))
            with marks:
                self._marks = marks if count_flops else None
                measure.synchronize(self.device)
                self._last = time.perf_counter()
                yield self
        finally:
            for name, function in originals.items():
                setattr(attention, name, function)
            self._marks = None
        if count_flops:
            self.flops = dict(marks.segments)
        else:
            self.history.append(self._current)


# ----------------------------------------------------------------------------- the run


def _autocast(config: BenchConfig, device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16) if config.amp else contextlib.nullcontext()


def _resolve_device(config: BenchConfig) -> torch.device:
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            f"config {config.name!r} runs on CUDA, but torch.cuda.is_available() is False here. "
            f"Run it on a GPU machine, or pass --device cpu (and probably a smaller --input-size/--batch)."
        )
    return device


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on Windows
        return []


@dataclasses.dataclass
class Workbench:
    """The models, inputs and workloads of one setting, ready to time (:func:`build_workbench`).

    ``workloads`` are what :func:`run_benchmark` times (on CPU the FineFACE iteration is the
    step-recorded one; on GPU an unmarked one, with a marked copy beside it);
    ``plain`` are unmarked versions of the same calls, for FLOPs, memory and host syncs.
    """

    config: BenchConfig
    device: torch.device
    model: FineFACE
    baseline: Baseline
    workloads: dict[str, Callable[[], Any]]
    plain: dict[str, Callable[[], Any]]
    recorder: StepRecorder
    finefcace_train: Callable[..., None]
    crop_agreement: float


def build_workbench(config: BenchConfig) -> Workbench:
    """Models (optionally compiled), random inputs and every workload of ``config``; also checks
    that the batched crop equals the per-sample loop (``crop_agreement``, max abs difference)."""
    device = _resolve_device(config)
    measure.prepare(device, config.threads, config.seed)
    preset = get_preset(config.preset)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    amp_dtype = torch.bfloat16 if config.amp else None

    sizes = {"descriptor_dim": config.descriptor_dim} if config.descriptor_dim else {}
    model = FineFACE.from_preset(config.preset, config.backbone, config.num_classes, **sizes).to(device)
    baseline = Baseline(config.backbone, config.num_classes).to(device)
    model = model.to(memory_format=memory_format)
    baseline = baseline.to(memory_format=memory_format)
    model.train()
    baseline.train()
    optimizer = build_optimizer(model, preset)
    baseline_optimizer = build_optimizer(baseline, preset)

    size = config.input_size
    images = torch.randn(config.batch, 3, size, size, device=device).contiguous(memory_format=memory_format)
    labels = torch.randint(config.num_classes, (config.batch,), device=device)
    generator = torch.Generator().manual_seed(config.seed)
    recorder = StepRecorder(device, model.num_experts)
    iteration_keywords = dict(
        concat_loss_weight=preset["concat_loss_weight"], threshold=preset["threshold"], pad=preset["pad"],
        region_draw=preset["region_draw"], generator=generator, amp_dtype=amp_dtype,
    )
    reference_rng = random.Random(config.seed)

    # Crop inputs: real CAMs of the (still uncompiled) model on a batch of crop_batch images.
    crop_images = torch.randn(config.crop_batch, 3, size, size, device=device)
    with torch.no_grad():
        model.eval()
        crop_cams = attention.class_activation_maps(model, model(crop_images))
        model.train()
    if config.compile:
        compile_in_place(model, backend=config.compile)
        compile_in_place(baseline, backend=config.compile)

    def finefcace_train(steps_forward: str = "expert_only", on_step=None) -> None:
        finefcace_iteration(model, optimizer, images, labels, steps_forward=steps_forward,
                            on_step=on_step, **iteration_keywords)

    def finefcace_train_recorded() -> None:
        with recorder.recording():
            finefcace_train(on_step=recorder.on_step)

    def published_train() -> None:
        with _autocast(config, device):
            published_structure_iteration(
                model, optimizer, images, labels, concat_loss_weight=preset["concat_loss_weight"],
                threshold=preset["threshold"], pad=preset["pad"], rng=reference_rng)

    def baseline_train() -> None:
        baseline_iteration(baseline, baseline_optimizer, images, labels, amp_dtype=amp_dtype)

    def baseline_infer() -> None:
        was_training = baseline.training
        baseline.eval()
        with torch.inference_mode(), _autocast(config, device):
            baseline(images)
        baseline.train(was_training)

    fusion = dict(views=preset["fusion_views"], heads=preset["fusion_heads"], combine=preset["fusion_combine"],
                  threshold=preset["threshold"], pad=preset["pad"])

    def fused_infer() -> None:
        with _autocast(config, device):
            fused_logits(model, images, **fusion)

    def crop_batched() -> tuple[list[torch.Tensor], torch.Tensor]:
        with torch.no_grad():
            return (attention.attention_regions(crop_images, crop_cams, preset["threshold"], preset["pad"]),
                    attention.overall_region(crop_images, crop_cams, preset["threshold"], preset["pad"]))

    def crop_per_sample() -> tuple[list[torch.Tensor], torch.Tensor]:
        return per_sample_regions(crop_images, crop_cams, preset["threshold"], preset["pad"])

    batched_regions, batched_overall = crop_batched()
    loop_regions, loop_overall = crop_per_sample()
    crop_agreement = max(float((a - b).abs().max()) for a, b in
                         zip([*batched_regions, batched_overall], [*loop_regions, loop_overall]))

    # On CPU the recorded iteration *is* the headline (its marks cost a perf_counter call);
    # on GPU the marks synchronise, so the headline runs unmarked and a marked copy runs beside it.
    instrument_headline = device.type == "cpu"
    workloads: dict[str, Callable[[], Any]] = {
        "baseline_train": baseline_train,
        "finefcace_train": finefcace_train_recorded if instrument_headline else finefcace_train,
        "finefcace_all_heads_train": lambda: finefcace_train("all_heads"),
        "published_train": published_train,
        "baseline_infer": baseline_infer,
        "fused_infer": fused_infer,
        "crop_batched": crop_batched,
        "crop_per_sample": crop_per_sample,
    }
    if not instrument_headline:
        workloads["finefcace_train_marked"] = finefcace_train_recorded
    plain = dict(workloads, finefcace_train=finefcace_train)
    return Workbench(config, device, model, baseline, workloads, plain, recorder, finefcace_train, crop_agreement)


def describe_setting(config: BenchConfig, device: torch.device) -> str:
    """One line naming a setting: backbone, size, batch, device and switches."""
    return (f"{config.backbone}, {config.input_size} px, batch {config.batch} (crops: batch {config.crop_batch}), "
            f"{device}{', bf16 autocast' if config.amp else ''}{', channels_last' if config.channels_last else ''}"
            f"{f', torch.compile ({config.compile})' if config.compile else ''}")


def run_benchmark(config: BenchConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure every workload for ``config``; returns the results dictionary (see module doc)."""
    load_before = _load()
    started = time.perf_counter()
    bench = build_workbench(config)
    device, recorder, plain = bench.device, bench.recorder, bench.plain

    log(f"[{config.name}] {describe_setting(config, device)}, "
        f"{torch.get_num_threads()} threads, load {load_before}; {config.warmup} warm-up + "
        f"{config.repetitions} interleaved repetitions")
    times = measure.interleaved_times(bench.workloads, device, repetitions=config.repetitions,
                                      warmup=config.warmup, progress=lambda s: log("  " + s))

    log("  counting FLOPs and peak memory ...")
    flops = {name: measure.count_flops(plain[name]) for name in FLOP_WORKLOADS}
    with recorder.recording(count_flops=True):
        bench.finefcace_train(on_step=recorder.on_step)

    def without_gradients(name: str) -> Callable[[], Any]:
        # Drop the gradients the previous call left, so every peak is measured from the same
        # state (weights, optimizer state, inputs) and no pre-existing block is freed inside.
        bench.model.zero_grad(set_to_none=True)
        bench.baseline.zero_grad(set_to_none=True)
        return plain[name]

    memory = {name: measure.peak_memory(without_gradients(name), device) for name in FLOP_WORKLOADS}

    syncs = {name: measure.count_host_syncs(plain[name], device) for name in FLOP_WORKLOADS}

    top_ops: dict[str, list[dict[str, Any]]] = {}
    if config.profile:
        log("  profiling (torch.profiler) ...")
        for name in ("baseline_train", "finefcace_train", "baseline_infer", "fused_infer"):
            top_ops[name] = measure.top_operators(plain[name], device)

    results = _assemble(config, device, times, flops, memory, syncs, recorder, top_ops, bench.crop_agreement,
                        load_before, _load(), time.perf_counter() - started)
    return results


def _assemble(config, device, times, flops, memory, syncs, recorder, top_ops, crop_agreement,
              load_before, load_after, seconds) -> dict[str, Any]:
    workloads = {}
    for name, values in times.items():
        workloads[name] = {"seconds": measure.summary(values), "samples": values}
        if name in flops:
            workloads[name]["flops"] = flops[name]
            workloads[name]["peak_memory_bytes"] = memory[name]["bytes"]
            workloads[name]["host_syncs"] = syncs[name]  # None on CPU
    memory_method = next(iter(memory.values()))["method"]

    def comparison(numerator: str, denominator: str, use_flops: bool = True) -> dict[str, Any]:
        entry: dict[str, Any] = {"numerator": numerator, "denominator": denominator,
                                 "time_ratio": measure.paired_ratio(times[numerator], times[denominator])}
        if use_flops:
            entry["flop_ratio"] = flops[numerator] / flops[denominator]
            entry["time_over_flop_ratio"] = entry["time_ratio"]["median"] / entry["flop_ratio"]
            entry["memory_ratio"] = (memory[numerator]["bytes"] / memory[denominator]["bytes"]
                                     if memory[denominator]["bytes"] else None)
        return entry

    comparisons = {
        "train": comparison("finefcace_train", "baseline_train"),
        "inference": comparison("fused_infer", "baseline_infer"),
        "all_heads_vs_finefcace": comparison("finefcace_all_heads_train", "finefcace_train"),
        "published_vs_finefcace": comparison("published_train", "finefcace_train"),
        "published_vs_baseline": comparison("published_train", "baseline_train"),
        "crop_per_sample_vs_batched": comparison("crop_per_sample", "crop_batched", use_flops=False),
    }

    # Per-step breakdown of the FineFACE iteration (medians over the recorded repetitions).
    history = recorder.history[-config.repetitions:]  # warm-up calls are recorded too
    labels = recorder.names + ["attention"]
    totals = [sum(h.values()) for h in history]
    steps = []
    flop_total = sum(recorder.flops.values()) if recorder.flops else 0
    for label in labels:
        seconds_each = [h.get(label, 0.0) for h in history]
        shares = [s / t for s, t in zip(seconds_each, totals)]
        steps.append({
            "step": label,
            "seconds": measure.summary(seconds_each),
            "time_share": measure.summary(shares),
            "flops": (recorder.flops or {}).get(label, 0),
            "flop_share": (recorder.flops or {}).get(label, 0) / flop_total if flop_total else None,
        })
    attention_share = measure.summary([h.get("attention", 0.0) / t for h, t in zip(history, totals)])

    train = comparisons["train"]
    inference = comparisons["inference"]
    values = {
        "train_time_over_flop_ratio": train["time_over_flop_ratio"],
        "inference_time_over_flop_ratio": inference["time_over_flop_ratio"],
        "crop_speedup": comparisons["crop_per_sample_vs_batched"]["time_ratio"]["median"],
        "crop_share_of_iteration": attention_share["median"],
        "finefcace_over_published_time": 1.0 / comparisons["published_vs_finefcace"]["time_ratio"]["median"],
    }
    targets = {}
    for name, (limit, direction) in TARGETS.items():
        value = values[name]
        met = value >= limit if direction == "min" else (value < limit if direction == "max_exclusive" else value <= limit)
        targets[name] = {"value": value, "limit": limit, "direction": direction, "met": bool(met)}

    return {
        "config": dataclasses.asdict(config),
        "environment": measure.environment(device, load_before, load_after, seconds),
        "inputs": "random tensors and random labels (synthetic; the costs do not depend on pixel values)",
        "flop_counter": "torch.utils.flop_counter.FlopCounterMode: matrix products and convolutions, "
                        "forward + backward for training; elementwise ops, pooling, interpolation and grid_sample not counted",
        "memory_method": memory_method,
        "workloads": workloads,
        "comparisons": comparisons,
        "step_breakdown": {"steps": steps, "attention_share": attention_share,
                           "history_seconds": history},
        "crop": {"batch": config.crop_batch, "max_abs_difference_batched_vs_per_sample": crop_agreement},
        "targets": targets,
        "top_operators": top_ops,
    }


# ----------------------------------------------------------------------------- output


def _ratio_text(summary: dict[str, float]) -> str:
    return f"{summary['median']:.2f}× [{summary['q1']:.2f}–{summary['q3']:.2f}]"


COMPARISON_LABELS = {
    "train": "Training iteration: FineFACE / baseline",
    "inference": "Inference: fused FineFACE / baseline",
    "all_heads_vs_finefcace": "Training: every head in every step / FineFACE (paper)",
    "published_vs_finefcace": "Training: published structure / FineFACE (paper)",
    "published_vs_baseline": "Training: published structure / baseline",
    "crop_per_sample_vs_batched": "Attention crop: per-sample loop / batched",
}

TARGET_LABELS = {
    "train_time_over_flop_ratio": "Training: FineFACE's extra time is its extra arithmetic (time ratio ÷ FLOP ratio)",
    "inference_time_over_flop_ratio": "Inference: the same for fused inference (time ratio ÷ FLOP ratio)",
    "crop_speedup": "Attention crop: batched crops beat the published per-sample loop (speed-up)",
    "crop_share_of_iteration": "Attention (CAMs + crops): a small share of a FineFACE iteration",
    "finefcace_over_published_time": "Algorithm 1 as written is faster than the published structure (time ratio)",
}


def _describe(results: dict[str, Any]) -> str:
    c, env = results["config"], results["environment"]
    extras = [x for x, on in (("bf16 autocast", c["amp"]), ("channels_last", c["channels_last"])) if on]
    return (f"{c['backbone']}, {c['input_size']} px, batch {c['batch']}, {env['device']}"
            f"{' (' + ', '.join(extras) + ')' if extras else ''}, {env['threads']} thread{'s' if env['threads'] != 1 else ''}, "
            f"{c['repetitions']} repetitions after {c['warmup']} warm-up")


def format_report(results: dict[str, Any]) -> str:
    """The console report: every comparison's time ratio beside its FLOP ratio, the step
    breakdown, the targets, and the top operators of the FineFACE iteration."""
    lines = [f"\n== {results['config']['name']}: {_describe(results)}"]
    lines.append(f"{'comparison':58s} {'time ratio [q1–q3]':>24s} {'FLOP ratio':>11s} {'time÷FLOP':>10s}")
    for key, entry in results["comparisons"].items():
        flop = f"{entry['flop_ratio']:.2f}×" if "flop_ratio" in entry else "–"
        over = f"{entry['time_over_flop_ratio']:.3f}" if "time_over_flop_ratio" in entry else "–"
        lines.append(f"{COMPARISON_LABELS[key]:58s} {_ratio_text(entry['time_ratio']):>24s} {flop:>11s} {over:>10s}")
    lines.append("\nworkload                     median ms   [q1–q3]              GFLOPs   peak MiB  host syncs")
    for name, w in results["workloads"].items():
        s = w["seconds"]
        spread = f"[{s['q1'] * 1e3:.1f}–{s['q3'] * 1e3:.1f}]"
        gflops = f"{w['flops'] / 1e9:10.2f}" if "flops" in w else f"{'–':>10s}"
        mib = f"{w['peak_memory_bytes'] / 2**20:10.1f}" if "peak_memory_bytes" in w else f"{'–':>10s}"
        syncs = w.get("host_syncs")
        lines.append(f"{name:28s} {s['median'] * 1e3:10.1f}   {spread:18s} {gflops} {mib} "
                     f"{syncs if syncs is not None else '–':>11}")
    lines.append(f"(peak memory: {results['memory_method']})")
    lines.append("\nFineFACE iteration, step by step   median ms   time share   GFLOPs   FLOP share")
    for step in results["step_breakdown"]["steps"]:
        share = f"{step['flop_share'] * 100:9.1f} %" if step["flop_share"] is not None else "–"
        lines.append(f"  {step['step']:32s} {step['seconds']['median'] * 1e3:9.1f} "
                     f"{step['time_share']['median'] * 100:10.1f} % {step['flops'] / 1e9:8.2f} {share}")
    lines.append(f"  (batched and per-sample crops agree to {results['crop']['max_abs_difference_batched_vs_per_sample']:.1e})")
    lines.append("\ntargets")
    for name, t in results["targets"].items():
        sign = {"max": "≤", "min": "≥", "max_exclusive": "<"}[t["direction"]]
        lines.append(f"  {'met   ' if t['met'] else 'MISSED'} {TARGET_LABELS[name]}: {t['value']:.3f} (target {sign} {t['limit']})")
    for name, ops in results["top_operators"].items():
        if name in ("finefcace_train", "baseline_train"):
            lines.append(f"\ntop operators by self time, one {name} call")
            lines.extend(f"  {o['op']:40s} {o['calls']:6d} calls {o['self_ms']:10.1f} ms {o['share'] * 100:5.1f} %"
                         for o in ops[:8])
    load = results["environment"]
    lines.append(f"\nload average before/after: {load['load_average_before']} / {load['load_average_after']}; "
                 f"{load['seconds']:.0f} s in all")
    return "\n".join(lines)


def cost_table(all_results: Sequence[dict[str, Any]]) -> str:
    """The markdown the book's cost chapter includes: one block per results file."""
    out = ["<!-- Generated by `python benchmarks/run.py`; do not edit by hand. -->", ""]
    if not all_results:
        return "\n".join(out + ["No benchmark results yet: run `python benchmarks/run.py`."]) + "\n"
    for results in all_results:
        env = results["environment"]
        out.append(f"**{results['config']['name']}** — {_describe(results)}; measured {env['date'][:10]} "
                   f"with torch {env['torch']}, load average {env['load_average_before']} → "
                   f"{env['load_average_after']}. Inputs: random tensors (synthetic).")
        out.append("")
        out.append("| Comparison | Time ratio, median [quartiles] | FLOP ratio | Time ÷ FLOP ratio | Peak-memory ratio |")
        out.append("|---|---|---|---|---|")
        for key, entry in results["comparisons"].items():
            flop = f"{entry['flop_ratio']:.2f}×" if "flop_ratio" in entry else "—"
            over = f"{entry['time_over_flop_ratio']:.2f}" if "time_over_flop_ratio" in entry else "—"
            mem = f"{entry['memory_ratio']:.2f}×" if entry.get("memory_ratio") else "—"
            out.append(f"| {COMPARISON_LABELS[key]} | {_ratio_text(entry['time_ratio'])} | {flop} | {over} | {mem} |")
        out.append("")
        with_syncs = any(w.get("host_syncs") is not None for w in results["workloads"].values())
        out.append("| Workload | Median time (ms) [quartiles] | GFLOPs | Peak memory (MiB) |"
                   + (" Host syncs |" if with_syncs else ""))
        out.append("|---|---|---|---|" + ("---|" if with_syncs else ""))
        for name, w in results["workloads"].items():
            if name == "finefcace_train_marked":
                continue
            s = w["seconds"]
            gflops = f"{w['flops'] / 1e9:.2f}" if "flops" in w else "—"
            mib = f"{w['peak_memory_bytes'] / 2**20:.0f}" if "peak_memory_bytes" in w else "—"
            syncs = (f" {w['host_syncs'] if w.get('host_syncs') is not None else '—'} |" if with_syncs else "")
            out.append(f"| `{name}` | {s['median'] * 1e3:.1f} [{s['q1'] * 1e3:.1f}–{s['q3'] * 1e3:.1f}] | "
                       f"{gflops} | {mib} |{syncs}")
        out.append("")
        out.append("| FineFACE step | Median time (ms) | Time share | GFLOPs | FLOP share |")
        out.append("|---|---|---|---|---|")
        for step in results["step_breakdown"]["steps"]:
            share = f"{step['flop_share'] * 100:.1f} %" if step["flop_share"] is not None else "—"
            out.append(f"| {step['step']} | {step['seconds']['median'] * 1e3:.1f} | "
                       f"{step['time_share']['median'] * 100:.1f} % | {step['flops'] / 1e9:.2f} | {share} |")
        out.append("")
        out.append("| What a good implementation does | Measured | Expected | Here? |")
        out.append("|---|---|---|---|")
        for name, t in results["targets"].items():
            sign = {"max": "≤", "min": "≥", "max_exclusive": "<"}[t["direction"]]
            out.append(f"| {TARGET_LABELS[name]} | {t['value']:.3f} | {sign} {t['limit']} | {'yes' if t['met'] else '**no**'} |")
        out.append("")
        crop = results["targets"].get("crop_speedup")
        if env["device"] == "cpu" and crop is not None and not crop["met"]:
            out.append("On a CPU nothing synchronises: the per-sample loop's reads to the host cost nothing and its "
                       "arithmetic is the batched code's, so the crop speed-up expected on a GPU (where every "
                       "host read stalls the device) is out of reach here; the attention's share of an iteration "
                       "is what matters on a CPU.")
            out.append("")
        out.append(f"Peak memory: {results['memory_method']}. FLOPs: {results['flop_counter']}.")
        out.append("")
    return "\n".join(out) + "\n"


def write_results(results: dict[str, Any], out_dir: Path) -> Path:
    """Write ``<name>.json`` and regenerate ``cost_table.md`` from every results file in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{results['config']['name']}.json"
    outputs.write_json(path, results)
    write_table(out_dir)
    return path


def write_table(out_dir: Path) -> Path:
    """Regenerate ``cost_table.md`` from every ``*.json`` results file in ``out_dir``."""
    order = {name: i for i, name in enumerate(CONFIGS)}
    found = []
    for file in sorted(out_dir.glob("*.json")):
        try:
            document = json.loads(file.read_text())
        except (json.JSONDecodeError, OSError) as error:
            raise SystemExit(f"cannot read results file {file}: {error}; delete or fix it and rerun") from error
        if "config" in document and "comparisons" in document:  # data_loading.json has a table of its own
            found.append(document)
    found.sort(key=lambda r: (order.get(r["config"]["name"], len(order)), r["config"]["name"]))
    outputs.write_text(out_dir / TABLE_FILE, cost_table(found))
    return out_dir / TABLE_FILE


def parse_config(argv: Sequence[str] | None = None) -> tuple[BenchConfig, Path, bool]:
    """(setting, results folder, table only) from the command line (see :func:`parse_arguments`)."""
    config, out, table_only, _ = parse_arguments(argv)
    return config, out, table_only


def parse_arguments(argv: Sequence[str] | None = None) -> tuple[BenchConfig, Path, bool, bool]:
    """(setting, results folder, table only, every training method) from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="cpu-small", choices=sorted(CONFIGS),
                        help="preset setting (default cpu-small); the options below override it")
    parser.add_argument("--backbone")
    parser.add_argument("--input-size", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--crop-batch", type=int, help="images in the crop comparison (default 64)")
    parser.add_argument("--repetitions", type=int)
    parser.add_argument("--warmup", type=int)
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ...")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None, help="bf16 autocast")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--preset", help="finefcace preset for the model switches (paper, official_code)")
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=None,
                        help="record torch.profiler top operators (default on)")
    parser.add_argument("--name", help="results file name (default: the config name, or a name built from the overrides)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help=f"results folder (default {RESULTS_DIR})")
    parser.add_argument("--table-only", action="store_true",
                        help=f"measure nothing: regenerate {TABLE_FILE} from the results files in --out")
    parser.add_argument("--methods", action="store_true",
                        help="measure the training iteration of every method (baseline, FineFACE, the mitigation "
                             "methods) instead; results in <out>/methods/ (benchmarks/methods.py)")
    args = parser.parse_args(argv)

    config = dataclasses.replace(CONFIGS[args.config])
    overrides = {f: getattr(args, f) for f in ("backbone", "input_size", "batch", "crop_batch", "repetitions",
                                               "warmup", "device", "amp", "channels_last", "preset", "profile",
                                               "threads")
                 if getattr(args, f) is not None}
    config = dataclasses.replace(config, **overrides)
    shape_changed = any(k in overrides for k in ("backbone", "input_size", "batch", "device", "amp", "channels_last", "preset"))
    if args.name:
        config.name = args.name
    elif shape_changed:
        config.name = f"{config.backbone}-{config.input_size}px-b{config.batch}-{torch.device(config.device).type}"
    for field in ("input_size", "batch", "crop_batch", "repetitions"):
        if getattr(config, field) < 1:
            parser.error(f"--{field.replace('_', '-')} must be at least 1, got {getattr(config, field)}")
    if config.threads is not None and config.threads < 1:
        parser.error(f"--threads must be at least 1, got {config.threads}")
    if config.warmup < 0:
        parser.error(f"--warmup must be 0 or more, got {config.warmup}")
    get_preset(config.preset)  # unknown preset: ValueError naming the valid ones
    return config, args.out, args.table_only, args.methods


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    config, out_dir, table_only, every_method = parse_arguments(argv)
    if every_method:
        if table_only:
            print(f"wrote {methods.write_table(out_dir, _describe, list(CONFIGS))}")
            return None
        results = methods.run_methods_benchmark(config, _resolve_device, _load)
        print(methods.format_report(results, _describe))
        path = methods.write_results(results, out_dir, _describe, list(CONFIGS))
        print(f"\nwrote {path} and {path.parent / methods.TABLE_FILE}")
        return results
    if table_only:
        print(f"wrote {write_table(out_dir)}")
        return None
    results = run_benchmark(config)
    print(format_report(results))
    path = write_results(results, out_dir)
    print(f"\nwrote {path} and {out_dir / TABLE_FILE}")
    return results


if __name__ == "__main__":
    main()
