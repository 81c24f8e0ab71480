"""What each training method costs per iteration, side by side with the baseline: FineFACE and
the four bias-mitigation methods of :mod:`finefcace.mitigation`.

Run from the repository root (``--methods`` on the cost benchmark; every setting of
``benchmarks/run.py`` applies)::

    python benchmarks/run.py --methods                  # cpu-small: ResNet-18, 112 px, batch 8
    python benchmarks/run.py --methods --config paper   # ResNet-50, 448 px, batch 16, CUDA, bf16

Each workload is one real training iteration — :func:`~finefcace.mutual_learning.baseline_iteration`,
:func:`~finefcace.mutual_learning.finefcace_iteration` (also with its two region controls, placebo
and none: ``experiments/controls.py``) and each method's iteration through the
engine's own table (:data:`finefcace.mitigation.MITIGATIONS`) — on random images, labels
(K = 2) and protected domains (D = 4, as the synthetic faces' tones), run interleaved after
warm-up (:mod:`benchmarks.measure`). Group-balanced *resampling* changes only which images a
batch holds, so its iteration is the baseline's and is not timed separately.

Writes ``<out>/methods/<name>.json`` and regenerates ``<out>/methods/cost_table.md`` from every
results file there; the results of ``python benchmarks/run.py`` (``<out>/*.json``) are not touched.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks import measure
from finefcace import outputs
from finefcace.mitigation import MITIGATIONS, check_options, inverse_frequency_weights
from finefcace.model import Baseline, FineFACE
from finefcace.mutual_learning import baseline_iteration, finefcace_iteration
from finefcace.presets import get_preset
from finefcace.training.recipe import build_optimizer

SUBFOLDER = "methods"
TABLE_FILE = "cost_table.md"
#: Protected domains of the random inputs (the synthetic faces' four tones).
NUM_DOMAINS = 4
REFERENCE = "baseline_train"
#: The controls of FineFACE's attention regions timed beside it (``TrainConfig.regions``): a
#: placebo iteration should cost what FineFACE's does (the same crops, other places); one with
#: no regions less (no CAM, no crop, the shallower heads not run for the maps).
CONTROLS = ("placebo", "none")


def run_methods_benchmark(config: Any, resolve_device: Callable, load: Callable[[], list[float]],
                          log: Callable[[str], None] = print) -> dict[str, Any]:
    """Time, FLOPs and peak memory of one training iteration of every method (``config``: a
    :class:`benchmarks.run.BenchConfig`); returns the results dictionary."""
    device = resolve_device(config)
    measure.prepare(device, config.threads, config.seed)
    preset = get_preset(config.preset)
    load_before, started = load(), time.perf_counter()
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    amp_dtype = torch.bfloat16 if config.amp else None
    k, size = config.num_classes, config.input_size
    images = torch.randn(config.batch, 3, size, size, device=device).contiguous(memory_format=memory_format)
    labels = torch.randint(k, (config.batch,), device=device)
    domains = torch.randint(NUM_DOMAINS, (config.batch,), device=device)
    counts = torch.tensor([[40.0, 30.0], [20.0, 15.0], [10.0, 8.0], [2.0, 6.0]])[:NUM_DOMAINS, :k]  # skewed, as in training

    def prepared(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        model = model.to(device).to(memory_format=memory_format).train()
        return model, build_optimizer(model, preset)

    workloads: dict[str, Callable[[], Any]] = {}
    models: list[torch.nn.Module] = []
    baseline, baseline_optimizer = prepared(Baseline(config.backbone, k))
    workloads[REFERENCE] = lambda: baseline_iteration(baseline, baseline_optimizer, images, labels, amp_dtype=amp_dtype)
    finefcace, finefcace_optimizer = prepared(FineFACE.from_preset(config.preset, config.backbone, k))
    generator = torch.Generator().manual_seed(config.seed)
    keywords = {key: preset[key] for key in ("concat_loss_weight", "threshold", "pad", "region_draw", "steps_forward")}
    workloads["finefcace_train"] = lambda: finefcace_iteration(finefcace, finefcace_optimizer, images, labels,
                                                               generator=generator, amp_dtype=amp_dtype, **keywords)
    models += [baseline, finefcace]
    for regions in CONTROLS:  # the attention-region controls: the same N + 2 steps on other inputs
        model, optimizer = prepared(FineFACE.from_preset(config.preset, config.backbone, k))

        def control(model=model, optimizer=optimizer, regions=regions) -> None:
            finefcace_iteration(model, optimizer, images, labels, generator=generator, amp_dtype=amp_dtype,
                                regions=regions, **keywords)

        workloads[f"finefcace_{regions}_regions_train"] = control
        models.append(model)
    for name, method in MITIGATIONS.items():
        options = check_options(name, None)
        model, optimizer = prepared(method.build_model(config.backbone, k, NUM_DOMAINS, None, options))
        state = method.build_state(counts, options)
        state = state.to(device) if state is not None else None

        def iteration(method=method, model=model, optimizer=optimizer, state=state, options=options) -> None:
            method.iteration(model, optimizer, images, labels, domains, state=state, options=options, amp_dtype=amp_dtype)

        workloads[f"{name}_train"] = iteration
        models.append(model)

    log(f"[{config.name} / methods] {config.backbone}, {size} px, batch {config.batch}, {device}"
        f"{', bf16 autocast' if config.amp else ''}, {torch.get_num_threads()} threads, load {load_before}; "
        f"{config.warmup} warm-up + {config.repetitions} interleaved repetitions")
    times = measure.interleaved_times(workloads, device, repetitions=config.repetitions, warmup=config.warmup,
                                      progress=lambda s: log("  " + s))
    log("  counting FLOPs and peak memory ...")
    flops = {name: measure.count_flops(fn) for name, fn in workloads.items()}

    def fresh(fn: Callable[[], Any]) -> Callable[[], Any]:
        for model in models:  # every peak measured from the same state: no gradients held
            model.zero_grad(set_to_none=True)
        return fn

    memory = {name: measure.peak_memory(fresh(fn), device) for name, fn in workloads.items()}
    results = {
        "config": dataclasses.asdict(config),
        "environment": measure.environment(device, load_before, load(), time.perf_counter() - started),
        "inputs": f"random tensors, random labels (K = {k}) and random protected domains (D = {NUM_DOMAINS}); "
                  "the costs do not depend on the values",
        "memory_method": next(iter(memory.values()))["method"],
        "workloads": {name: {"seconds": measure.summary(values), "samples": values, "flops": flops[name],
                             "peak_memory_bytes": memory[name]["bytes"]} for name, values in times.items()},
        "comparisons": {name: {"numerator": name, "denominator": REFERENCE,
                               "time_ratio": measure.paired_ratio(times[name], times[REFERENCE]),
                               "flop_ratio": flops[name] / flops[REFERENCE],
                               "memory_ratio": (memory[name]["bytes"] / memory[REFERENCE]["bytes"]
                                                if memory[REFERENCE]["bytes"] else None)}
                        for name in times if name != REFERENCE},
        "protected_labels": {name: name.removesuffix("_train") in MITIGATIONS for name in times},
    }
    return results


def _method_label(workload: str) -> str:
    name = workload.removesuffix("_train")
    if name in MITIGATIONS:
        return f"{MITIGATIONS[name].title} ({MITIGATIONS[name].source})"
    return {"baseline": "Baseline", "finefcace": "FineFACE (Algorithm 1, N + 2 steps)",
            "finefcace_placebo_regions": "FineFACE, placebo regions (control)",
            "finefcace_none_regions": "FineFACE, no regions (control)"}[name]


def format_report(results: dict[str, Any], describe: Callable[[dict[str, Any]], str]) -> str:
    """The console report: each method's time and FLOP ratio to the baseline."""
    lines = [f"\n== {results['config']['name']} / methods: {describe(results)}",
             f"{'method':62s} {'time / baseline [q1–q3]':>26s} {'FLOPs / baseline':>17s} {'median ms':>10s}"]
    for name, w in results["workloads"].items():
        entry = results["comparisons"].get(name)
        ratio = (f"{entry['time_ratio']['median']:.2f}× [{entry['time_ratio']['q1']:.2f}–{entry['time_ratio']['q3']:.2f}]"
                 if entry else "1 (reference)")
        flop = f"{entry['flop_ratio']:.2f}×" if entry else "1"
        lines.append(f"{_method_label(name):62s} {ratio:>26s} {flop:>17s} {w['seconds']['median'] * 1e3:10.1f}")
    return "\n".join(lines)


def cost_table(all_results: Sequence[dict[str, Any]], describe: Callable[[dict[str, Any]], str],
               main_results: dict[str, dict[str, Any]] | None = None) -> str:
    """The Markdown the book includes: one table per results file, each followed, when
    ``main_results`` (the plain benchmark's results, by setting name) has the same setting, by
    :func:`reconciliation` of its FineFACE / baseline ratio with that table's."""
    out = ["<!-- Generated by `python benchmarks/run.py --methods`; do not edit by hand. -->", ""]
    if not all_results:
        return "\n".join(out + ["No results yet: run `python benchmarks/run.py --methods`."]) + "\n"
    for results in all_results:
        env = results["environment"]
        out += [f"**{results['config']['name']}** — {describe(results)}; measured {env['date'][:10]} with torch "
                f"{env['torch']}, load average {env['load_average_before']} → {env['load_average_after']}. "
                f"Inputs: {results['inputs']}.", "",
                "| Method | Protected labels in training | Time per iteration ÷ baseline, median [quartiles] | "
                "FLOPs ÷ baseline | Peak memory ÷ baseline | Median time (ms) |",
                "|---|---|---|---|---|---|"]
        for name, w in results["workloads"].items():
            entry = results["comparisons"].get(name)
            ratio = (f"{entry['time_ratio']['median']:.2f}× [{entry['time_ratio']['q1']:.2f}–"
                     f"{entry['time_ratio']['q3']:.2f}]" if entry else "1 (reference)")
            flop = f"{entry['flop_ratio']:.2f}×" if entry else "1"
            memory = f"{entry['memory_ratio']:.2f}×" if entry and entry.get("memory_ratio") else ("1" if not entry else "—")
            uses = "**yes**" if results["protected_labels"][name] else "no"
            out.append(f"| {_method_label(name)} | {uses} | {ratio} | {flop} | {memory} | {w['seconds']['median'] * 1e3:.1f} |")
        out += ["", f"Peak memory: {results['memory_method']}.", ""]
        main = (main_results or {}).get(results["config"]["name"])
        if main is not None:
            sentence = reconciliation(results, main)
            if sentence:
                out += [sentence, ""]
    return "\n".join(out) + "\n"


#: The settings that make two benchmark runs the same workload (the rest — repetitions, the
#: profiler — change how it is measured, not what).
SAME_SETTING = ("backbone", "input_size", "batch", "device", "amp", "channels_last", "preset", "num_classes")


def _change(new: float, old: float) -> str:
    return f"{100 * (new / old - 1):+.1f} %".replace("-", "−")


def _ratio(entry: dict[str, Any]) -> str:
    return f"{entry['median']:.2f}× [{entry['q1']:.2f}–{entry['q3']:.2f}]"


def reconciliation(results: dict[str, Any], main: dict[str, Any]) -> str:
    """Why this table's FineFACE / baseline ratio differs from the cost table's for the same
    setting (``main``: the ``benchmarks/run.py`` results of the same name), generated from both
    results files: the same two iterations, measured in two runs — their dates, machine loads,
    the workloads interleaved with them, and how much each iteration's median time moved.
    Empty when the settings differ (then the two ratios measure different things) or a file
    lacks the numbers. Book: ``book/cost.md``."""
    here_config, there_config = results["config"], main["config"]
    if any(here_config.get(k) != there_config.get(k) for k in SAME_SETTING):
        return ""
    try:
        here, there = results["comparisons"]["finefcace_train"], main["comparisons"]["train"]
        times_here = {k: results["workloads"][k]["seconds"]["median"] for k in (REFERENCE, "finefcace_train")}
        times_there = {k: main["workloads"][k]["seconds"]["median"] for k in (REFERENCE, "finefcace_train")}
    except KeyError:
        return ""
    env_here, env_there = results["environment"], main["environment"]
    overlap = (here["time_ratio"]["q1"] <= there["time_ratio"]["q3"]
               and there["time_ratio"]["q1"] <= here["time_ratio"]["q3"])
    baseline_move = abs(times_here[REFERENCE] / times_there[REFERENCE] - 1)
    finefcace_move = abs(times_here["finefcace_train"] / times_there["finefcace_train"] - 1)
    mover = "the baseline's" if baseline_move > finefcace_move else "FineFACE's"
    others_here = [k for k in results["workloads"] if k not in (REFERENCE, "finefcace_train")]
    others_there = [k for k in main["workloads"] if k not in (REFERENCE, "finefcace_train", "finefcace_train_marked")]
    listed = lambda names: ", ".join(f"`{n}`" for n in names)  # noqa: E731
    verdict = ("The two agree within their quartiles." if overlap else
               f"Their quartiles do not overlap, and the ratio moved mostly with {mover} time: the code timed is "
               "the same, so the gap comes from the measurement — two runs on a shared machine, each beside other "
               "workloads. Compare ratios within one table, and read the gap between the two tables as the "
               "run-to-run uncertainty of a CPU measurement.")
    return (f"**FineFACE / baseline here and in the cost table above.** This table measures "
            f"{_ratio(here['time_ratio'])} for `{results['config']['name']}`; the cost table "
            f"{_ratio(there['time_ratio'])}. Both time the same two functions (`baseline_iteration`, "
            f"`finefcace_iteration`) at the same setting (FLOP ratio {here['flop_ratio']:.2f}× here, "
            f"{there['flop_ratio']:.2f}× there), but in two separate runs: measured {env_here['date'][:10]} against "
            f"{env_there['date'][:10]}, load average {env_here['load_average_before']} against "
            f"{env_there['load_average_before']} at the start, each interleaved with other workloads (here "
            f"{listed(others_here)}; there {listed(others_there)}, and FineFACE's iteration read the clock at each "
            f"step for the per-step table). The baseline's median iteration took "
            f"{1e3 * times_here[REFERENCE]:.1f} ms here against {1e3 * times_there[REFERENCE]:.1f} ms there "
            f"({_change(times_here[REFERENCE], times_there[REFERENCE])}), FineFACE's "
            f"{1e3 * times_here['finefcace_train']:.1f} ms against {1e3 * times_there['finefcace_train']:.1f} ms "
            f"({_change(times_here['finefcace_train'], times_there['finefcace_train'])}). {verdict}")


def write_results(results: dict[str, Any], out_dir: Path, describe: Callable[[dict[str, Any]], str],
                  order: Sequence[str]) -> Path:
    """``<out_dir>/methods/<name>.json``, then the table regenerated from every file there."""
    folder = out_dir / SUBFOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{results['config']['name']}.json"
    outputs.write_json(path, results)
    write_table(out_dir, describe, order)
    return path


def write_table(out_dir: Path, describe: Callable[[dict[str, Any]], str], order: Sequence[str]) -> Path:
    folder = out_dir / SUBFOLDER
    found = [json.loads(f.read_text()) for f in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    rank = {name: i for i, name in enumerate(order)}
    found.sort(key=lambda r: (rank.get(r["config"]["name"], len(rank)), r["config"]["name"]))
    folder.mkdir(parents=True, exist_ok=True)
    main = {}
    for file in sorted(out_dir.glob("*.json")):  # the plain benchmark's results, to reconcile the ratios
        document = json.loads(file.read_text())
        if "config" in document and "comparisons" in document:  # not data_loading.json and the like
            main[document["config"]["name"]] = document
    outputs.write_text(folder / TABLE_FILE, cost_table(found, describe, main))
    return folder / TABLE_FILE
