"""Measuring tools for the cost benchmark: interleaved timing, FLOP counts, peak memory.

Used by ``benchmarks/run.py``; the numbers they produce appear in the book's cost table
(``benchmarks/results/cost_table.md``). Nothing here asserts a speed: the benchmark prints
measured ratios side by side.

- Timing (:func:`interleaved_times`): every workload runs once per repetition, in an order
  that rotates between repetitions, after warm-up repetitions that are not recorded. On a
  GPU each call is bracketed by ``torch.cuda.synchronize()``. Ratios are taken per
  repetition (the two workloads ran seconds apart, under the same machine load) and then
  summarised by their median and quartiles.
- FLOPs (:func:`count_flops`): ``torch.utils.flop_counter.FlopCounterMode`` around one call;
  for a training iteration that includes the backward pass (the autograd ops run inside the
  mode). It counts matrix products and convolutions only (no elementwise ops, pooling,
  interpolation or ``grid_sample``), i.e. the arithmetic that should dominate. The backward of
  a grouped (depthwise) convolution uses :func:`grouped_conv_backward_flop`, which corrects
  torch's formula (it ignores the groups in the weight gradient).
- Peak memory (:func:`peak_memory`): on CUDA, ``torch.cuda.max_memory_allocated`` minus the
  allocated bytes before the call. On CPU, the running sum of the allocation/free events
  recorded by ``torch.profiler`` (``profile_memory=True``) for torch's CPU allocator, maximised
  over the call: the peak of bytes held by tensors above the level at the start of the call
  (the CPU analogue of the CUDA figure; the process RSS would also count the allocator's
  caching and Python).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode


def synchronize(device: torch.device) -> None:
    """Wait for queued device work (CUDA); a no-op on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall-clock seconds of one ``fn()``, device work included."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def interleaved_times(
    workloads: Mapping[str, Callable[[], Any]],
    device: torch.device,
    *,
    repetitions: int,
    warmup: int,
    progress: Callable[[str], None] | None = None,
) -> dict[str, list[float]]:
    """Seconds per call of each workload, ``repetitions`` values each (warm-up discarded).

    Repetition r runs the workloads in the given order rotated by r, so no workload always
    runs first (after a pause) or right after the heaviest one.
    """
    if repetitions < 1 or warmup < 0:
        raise ValueError(f"need repetitions >= 1 and warmup >= 0, got {repetitions} and {warmup}")
    names = list(workloads)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(warmup + repetitions):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            seconds = time_call(workloads[name], device)
            if r >= warmup:
                times[name].append(seconds)
        if progress is not None:
            kind = "warm-up" if r < warmup else "repetition"
            index = r + 1 if r < warmup else r - warmup + 1
            total = warmup if r < warmup else repetitions
            progress(f"{kind} {index}/{total}: " + ", ".join(
                f"{n} {times[n][-1] * 1e3:.0f} ms" if r >= warmup else n for n in names))
    return times


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, quartiles, min and max of a list of measurements."""
    ordered = sorted(values)
    if len(ordered) >= 2:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = ordered[0]
    return {
        "median": statistics.median(ordered),
        "q1": q1,
        "q3": q3,
        "min": ordered[0],
        "max": ordered[-1],
        "n": len(ordered),
    }


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> dict[str, float]:
    """Summary of the per-repetition ratios numerator[r] / denominator[r]."""
    if len(numerator) != len(denominator) or not numerator:
        raise ValueError("paired ratios need two equally long, non-empty lists")
    return summary([a / b for a, b in zip(numerator, denominator)])


def grouped_conv_backward_flop(grad_out_shape, x_shape, w_shape, bias, stride, padding, dilation, transposed,
                               output_padding, groups, output_mask, out_shape, **kwargs) -> int:
    """``aten.convolution_backward`` FLOPs with the weight gradient of a grouped convolution
    divided by its ``groups``.

    torch's own formula (``torch.utils.flop_counter.conv_backward_flop``, torch 2.14) ignores
    ``groups`` in the weight-gradient term, as if every output channel saw every input channel:
    a depthwise 7x7 convolution (ConvNeXt) has its backward counted 98x its forward instead of
    2x (checked in ``tests/test_benchmarks.py``). Dense convolutions (ResNet) are unchanged.
    """
    from torch.utils.flop_counter import conv_backward_flop as registered

    conv_backward_flop = registered.__wrapped__  # the formula on shapes, without torch's shape wrapper
    args = (grad_out_shape, x_shape, w_shape, bias, stride, padding, dilation, transposed, output_padding, groups)
    total = conv_backward_flop(*args, output_mask, out_shape, **kwargs)
    if groups == 1 or not output_mask[1]:
        return total
    weight_term = conv_backward_flop(*args, [False, True, False], [None, out_shape[1], None], **kwargs)
    return total - weight_term + weight_term // groups


def flop_counter() -> FlopCounterMode:
    """A ``FlopCounterMode`` (no display) with :func:`grouped_conv_backward_flop` for grouped convolutions."""
    return FlopCounterMode(display=False,
                           custom_mapping={torch.ops.aten.convolution_backward: grouped_conv_backward_flop})


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one ``fn()`` (forward and, if it runs one, backward), by FlopCounterMode."""
    with flop_counter() as counter:
        fn()
    return int(counter.get_total_flops())


class FlopMarks:
    """FLOPs between marks during one call: ``mark(label)`` closes the segment since the last mark.

    Used to split one training iteration into its N + 2 steps (see ``run.py``).
    """

    def __init__(self) -> None:
        self.counter = flop_counter()
        self.segments: dict[str, int] = {}
        self._last = 0

    def __enter__(self) -> FlopMarks:
        self.counter.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.counter.__exit__(*exc)

    def mark(self, label: str) -> None:
        total = int(self.counter.get_total_flops())
        self.segments[label] = self.segments.get(label, 0) + total - self._last
        self._last = total


def peak_memory(fn: Callable[[], Any], device: torch.device) -> dict[str, Any]:
    """Peak bytes allocated by tensors during one ``fn()``, above the level at its start."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return {"bytes": int(torch.cuda.max_memory_allocated(device) - start),
                "method": "torch.cuda.max_memory_allocated minus allocated at start"}
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU]
    events.sort(key=lambda e: e.start_ns())
    level = peak = 0
    for event in events:
        level += event.nbytes()
        peak = max(peak, level)
    return {"bytes": int(peak),
            "method": "torch.profiler CPU allocator events: running sum of allocations minus frees, maximised"}


def count_host_syncs(fn: Callable[[], Any], device: torch.device) -> int | None:
    """Synchronising CUDA operations (device-to-host reads, ``nonzero``, ...) in one ``fn()``.

    Counted with ``torch.cuda.set_sync_debug_mode("warn")``, one warning per synchronising
    call. ``None`` on CPU, where nothing synchronises.
    """
    if device.type != "cuda":
        return None
    import warnings

    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    synchronize(device)
    return sum("synchroniz" in str(w.message) for w in caught)


def top_operators(fn: Callable[[], Any], device: torch.device, limit: int = 12) -> list[dict[str, Any]]:
    """The ``limit`` operators with the most self time in one ``fn()`` (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        fn()
        synchronize(device)
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    averages = sorted(prof.key_averages(), key=lambda e: getattr(e, key), reverse=True)
    total = sum(getattr(e, key) for e in averages) or 1.0
    return [{"op": e.key, "calls": int(e.count), "self_ms": getattr(e, key) / 1e3,
             "share": getattr(e, key) / total} for e in averages[:limit]]


def environment(device: torch.device, load_before: list[float], load_after: list[float], seconds: float) -> dict[str, Any]:
    """The machine and moment of a measurement, as the results files record them."""
    import datetime
    import os
    import platform

    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seconds": seconds,
    }


def prepare(device: torch.device, threads: int | None, seed: int) -> None:
    """Before a benchmark: the CPU threads (if given), the seed, cuDNN's autotuner on CUDA."""
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
