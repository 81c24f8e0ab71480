"""The cost benchmark's machinery (``benchmarks/``), run once on a tiny setting.

No timing is asserted (speed is measured by ``python benchmarks/run.py``, never in unit
tests): these tests check that every field of the results file is there and sane, that the
FLOP accounting adds up, and that the per-sample reference crops what the batched code crops.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import measure  # noqa: E402
from benchmarks.reference import per_sample_cams, per_sample_regions  # noqa: E402
from benchmarks.run import COMPARISON_LABELS, CONFIGS, TARGETS, StepRecorder, parse_config, run_benchmark  # noqa: E402
from finefcace import FineFACE, attention  # noqa: E402
from finefcace.mutual_learning import step_names  # noqa: E402

TRAIN = ["baseline_train", "finefcace_train", "finefcace_all_heads_train", "published_train"]
INFER = ["baseline_infer", "fused_infer"]
CROP = ["crop_batched", "crop_per_sample"]


def _sane_summary(s: dict) -> None:
    assert set(s) == {"median", "q1", "q3", "min", "max", "n"}
    assert s["n"] >= 1
    assert 0 < s["min"] <= s["q1"] <= s["median"] <= s["q3"] <= s["max"] < math.inf


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("bench")
    # A subprocess, so --threads and the timing loop do not touch this test process.
    command = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--config", "tiny", "--out", str(out),
               "--threads", "1", "--no-profile"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "time ratio" in done.stdout and "targets" in done.stdout
    return json.loads((out / "tiny.json").read_text()), out


def test_results_file_has_every_workload_with_sane_values(tiny_results):
    results, _ = tiny_results
    config = results["config"]
    assert (config["backbone"], config["input_size"], config["batch"], config["repetitions"]) == ("resnet18", 64, 2, 1)
    assert results["environment"]["threads"] == 1
    assert results["environment"]["device"] == "cpu"
    assert set(results["workloads"]) == set(TRAIN + INFER + CROP)
    for name, workload in results["workloads"].items():
        _sane_summary(workload["seconds"])
        assert len(workload["samples"]) == 1
        if name in TRAIN + INFER:
            assert workload["flops"] > 0
            assert workload["peak_memory_bytes"] > 0
            assert workload["host_syncs"] is None  # counted on CUDA only
    w = results["workloads"]
    # FineFACE does strictly more arithmetic than the baseline, and the published structure
    # (every head in every step) more than the paper's expert-only steps.
    assert w["finefcace_train"]["flops"] > 3 * w["baseline_train"]["flops"]
    assert w["published_train"]["flops"] > w["finefcace_train"]["flops"]
    assert w["finefcace_all_heads_train"]["flops"] == pytest.approx(w["published_train"]["flops"], rel=0.01)
    # Fused inference = two full FineFACE forwards (raw, A_oval) plus the CAMs.
    assert w["fused_infer"]["flops"] > 2 * w["baseline_infer"]["flops"]
    assert "torch.profiler" in results["memory_method"]


def test_comparisons_and_targets(tiny_results):
    results, _ = tiny_results
    w = results["workloads"]
    assert set(results["comparisons"]) == set(COMPARISON_LABELS)
    for key, entry in results["comparisons"].items():
        _sane_summary(entry["time_ratio"])
        expected = w[entry["numerator"]]["seconds"]["median"] / w[entry["denominator"]]["seconds"]["median"]
        assert entry["time_ratio"]["median"] == pytest.approx(expected)  # one repetition: paired = plain
        if "flop_ratio" in entry:
            assert entry["flop_ratio"] == pytest.approx(w[entry["numerator"]]["flops"] / w[entry["denominator"]]["flops"])
            assert entry["time_over_flop_ratio"] == pytest.approx(entry["time_ratio"]["median"] / entry["flop_ratio"])
    assert "flop_ratio" not in results["comparisons"]["crop_per_sample_vs_batched"]
    assert set(results["targets"]) == set(TARGETS)
    for target in results["targets"].values():
        assert math.isfinite(target["value"]) and target["value"] > 0
        assert isinstance(target["met"], bool)
    assert results["top_operators"] == {}  # --no-profile


def test_step_breakdown_adds_up(tiny_results):
    results, _ = tiny_results
    breakdown = results["step_breakdown"]
    steps = breakdown["steps"]
    assert [s["step"] for s in steps] == step_names(3) + ["attention"]
    # The step FLOPs partition the whole iteration's FLOPs.
    assert sum(s["flops"] for s in steps) == pytest.approx(results["workloads"]["finefcace_train"]["flops"], rel=1e-6)
    assert sum(s["flop_share"] for s in steps) == pytest.approx(1.0)
    # One repetition: the step times partition the recorded iteration.
    assert sum(s["time_share"]["median"] for s in steps) == pytest.approx(1.0)
    assert all(s["seconds"]["median"] > 0 for s in steps)
    assert 0 < breakdown["attention_share"]["median"] < 1
    assert results["targets"]["crop_share_of_iteration"]["value"] == breakdown["attention_share"]["median"]
    assert results["crop"]["max_abs_difference_batched_vs_per_sample"] < 1e-4


def test_cost_table_lists_every_comparison(tiny_results):
    _, out = tiny_results
    table = (out / "cost_table.md").read_text()
    assert "**tiny**" in table and "synthetic" in table
    for label in COMPARISON_LABELS.values():
        assert label in table
    for name in step_names(3):
        assert f"| {name} |" in table


def test_per_sample_reference_matches_batched_attention():
    torch.manual_seed(0)
    model = FineFACE("resnet18", 2, descriptor_dim=64).eval()
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        output = model(images)
    cams = attention.class_activation_maps(model, output)
    loop_cams = per_sample_cams(model, output.maps, output.expert_logits)
    for a, b in zip(cams, loop_cams):
        torch.testing.assert_close(a, b)
    cams[0][1] = 0.0  # a constant map: the whole image, in both implementations
    regions, overall = per_sample_regions(images, cams)
    torch.testing.assert_close(regions[0][1], images[1], atol=1e-5, rtol=0)
    for a, b in zip(attention.attention_regions(images, cams), regions):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    torch.testing.assert_close(attention.overall_region(images, cams), overall, atol=1e-4, rtol=0)


def test_step_recorder_restores_the_attention_functions():
    originals = [getattr(attention, n) for n in StepRecorder.WRAPPED]
    recorder = StepRecorder(torch.device("cpu"), 3)
    with pytest.raises(RuntimeError):
        with recorder.recording():
            assert attention.attention_regions is not originals[1]
            raise RuntimeError("interrupted")
    assert [getattr(attention, n) for n in StepRecorder.WRAPPED] == originals


def test_measure_helpers():
    s = measure.summary([3.0, 1.0, 2.0])
    assert (s["median"], s["min"], s["max"], s["n"]) == (2.0, 1.0, 3.0, 3)
    assert measure.paired_ratio([2.0, 6.0], [1.0, 2.0])["median"] == pytest.approx(2.5)
    with pytest.raises(ValueError):
        measure.paired_ratio([1.0], [1.0, 2.0])
    a, b = torch.randn(32, 16), torch.randn(16, 8)
    assert measure.count_flops(lambda: a @ b) == 2 * 32 * 16 * 8
    peak = measure.peak_memory(lambda: torch.ones(1 << 20).sum(), torch.device("cpu"))
    assert peak["bytes"] >= 4 << 20  # the 4 MiB tensor was alive at the peak
    ops = measure.top_operators(lambda: a @ b, torch.device("cpu"), limit=3)
    assert ops and {"op", "calls", "self_ms", "share"} <= set(ops[0])
    calls = []
    times = measure.interleaved_times({"x": lambda: calls.append("x"), "y": lambda: calls.append("y")},
                                      torch.device("cpu"), repetitions=2, warmup=1)
    assert calls == ["x", "y", "y", "x", "x", "y"]  # the order rotates each repetition
    assert [len(v) for v in times.values()] == [2, 2]


def test_configs_and_clear_errors(capsys):
    assert {"cpu-small", "cpu-r50", "paper", "tiny"} <= set(CONFIGS)
    paper = CONFIGS["paper"]
    assert (paper.backbone, paper.input_size, paper.batch, paper.amp, paper.channels_last) == ("resnet50", 448, 16, True, True)
    config, _, table_only = parse_config(["--config", "cpu-small", "--batch", "4"])
    assert not table_only
    assert config.batch == 4 and config.name == "resnet18-112px-b4-cpu"
    with pytest.raises(SystemExit):
        parse_config(["--batch", "0"])
    assert "--batch must be at least 1" in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="torch.cuda.is_available"):
            run_benchmark(paper)


def test_table_only_regenerates_the_table_from_the_results_files(tiny_results):
    from benchmarks.run import main

    _, out = tiny_results
    (out / "cost_table.md").unlink()
    assert main(["--table-only", "--out", str(out)]) is None
    assert "**tiny**" in (out / "cost_table.md").read_text()


@pytest.mark.parametrize("groups", [1, 4, 96])
def test_flop_count_of_a_grouped_convolution_backward_is_twice_its_forward(groups):
    """torch's formula ignores the groups in the weight gradient (a depthwise 7x7 convolution,
    ConvNeXt's, would count 98x its forward in backward); the benchmark's counter divides that
    term by the groups, so forward + backward = 3x forward for every grouping, as for a dense one."""
    conv = torch.nn.Conv2d(96, 96, 7, padding=3, groups=groups, bias=False)
    x = torch.randn(2, 96, 28, 28, requires_grad=True)
    forward = measure.count_flops(lambda: conv(x))
    assert forward == 2 * 2 * 96 * (96 // groups) * 49 * 28 * 28
    assert measure.count_flops(lambda: conv(x).sum().backward()) == 3 * forward
    assert measure.count_flops(lambda: conv(x.detach()).sum().backward()) == 2 * forward  # weight gradient only


def test_methods_benchmark_times_every_training_method_beside_the_baseline(tmp_path):
    """``--methods``: one iteration of every method (baseline, FineFACE, the mitigation methods),
    written under methods/ without touching the results of the plain benchmark."""
    from finefcace.mitigation import MITIGATIONS

    command = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--methods", "--config", "tiny",
               "--out", str(tmp_path), "--threads", "1"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "methods" / "tiny.json").read_text())
    expected = ["baseline_train", "finefcace_train", "finefcace_placebo_regions_train", "finefcace_none_regions_train",
                *[f"{m}_train" for m in MITIGATIONS]]
    assert list(results["workloads"]) == expected
    assert set(results["comparisons"]) == set(expected[1:])
    w = results["workloads"]
    for name, entry in results["comparisons"].items():
        _sane_summary(entry["time_ratio"])
        assert entry["time_ratio"]["median"] == pytest.approx(w[name]["seconds"]["median"] / w["baseline_train"]["seconds"]["median"])
        assert entry["flop_ratio"] == pytest.approx(w[name]["flops"] / w["baseline_train"]["flops"])
    # the mitigation methods add a head or a weighting to the baseline's arithmetic, FineFACE N + 2 steps
    for name in MITIGATIONS:
        assert 0.99 < results["comparisons"][f"{name}_train"]["flop_ratio"] < 1.1
    assert results["comparisons"]["finefcace_train"]["flop_ratio"] > 3
    # the controls: the placebo crops as many pixels as FineFACE, elsewhere (same arithmetic, to
    # the bilinear crop's few FLOPs); no regions skips the CAMs, the crops and the shallow heads' maps
    fineface = results["comparisons"]["finefcace_train"]["flop_ratio"]
    assert results["comparisons"]["finefcace_placebo_regions_train"]["flop_ratio"] == pytest.approx(fineface, rel=0.02)
    assert 3 < results["comparisons"]["finefcace_none_regions_train"]["flop_ratio"] < fineface
    assert results["protected_labels"] == {name: name.removesuffix("_train") in MITIGATIONS for name in expected}
    table = (tmp_path / "methods" / "cost_table.md").read_text()
    assert "**tiny**" in table and table.count("| **yes** |") == len(MITIGATIONS)
    assert not (tmp_path / "cost_table.md").exists()  # the plain benchmark's table is not touched


def _ratio_results(kind: str, baseline_s: float, finefcace_s: float, q: tuple[float, float], date: str,
                   **config) -> dict:
    """Hand-made results of the plain (``kind="main"``) or the methods benchmark, one setting."""
    ratio = finefcace_s / baseline_s
    entry = {"time_ratio": {"median": ratio, "q1": q[0], "q3": q[1]}, "flop_ratio": 13.0}
    workloads = {"baseline_train": {"seconds": {"median": baseline_s}},
                 "finefcace_train": {"seconds": {"median": finefcace_s}},
                 ("fused_infer" if kind == "main" else "group_dro_train"): {"seconds": {"median": 0.1}}}
    return {"config": {"name": "cpu-small", "backbone": "resnet18", "input_size": 112, "batch": 8, "device": "cpu",
                       **config},
            "environment": {"date": date, "load_average_before": [0.5, 0.5, 0.5]},
            "workloads": workloads,
            "comparisons": {("train" if kind == "main" else "finefcace_train"): entry}}


def test_the_methods_table_explains_a_ratio_that_differs_from_the_cost_tables():
    """The same setting measured by the two benchmarks: the generated sentence gives both ratios,
    both dates, the other workloads of each run, and which iteration's time moved."""
    from benchmarks.methods import reconciliation

    main = _ratio_results("main", 0.100, 1.20, (11.5, 12.5), "2026-11-29T10:00:00")
    here = _ratio_results("methods", 0.120, 1.21, (9.9, 10.2), "2026-12-07T10:00:00")
    text = reconciliation(here, main)
    assert "10.08× [9.90–10.20]" in text and "12.00× [11.50–12.50]" in text
    assert "2026-12-07 against 2026-11-29" in text
    assert "`group_dro_train`" in text and "`fused_infer`" in text
    assert "120.0 ms here against 100.0 ms there (+20.0 %)" in text
    assert "do not overlap" in text and "mostly with the baseline's time" in text
    # FineFACE's time moving more names FineFACE
    moved = reconciliation(_ratio_results("methods", 0.101, 1.00, (9.0, 10.5), "2026-12-07"), main)
    assert "mostly with FineFACE's time" in moved
    # overlapping quartiles: the two agree
    close = reconciliation(_ratio_results("methods", 0.100, 1.19, (11.0, 12.2), "2026-12-07"), main)
    assert "agree within their quartiles" in close and "do not overlap" not in close
    # another setting (another input size) is another workload: nothing to reconcile
    assert reconciliation(_ratio_results("methods", 0.1, 1.2, (11, 12), "2026-12-07", input_size=224), main) == ""


def test_the_committed_methods_table_reconciles_its_ratio_with_the_cost_table():
    """benchmarks/results/methods/cost_table.md is what --table-only writes from the committed
    results files, the reconciling sentence included (both tables show cpu-small)."""
    from benchmarks import methods, run

    committed = (ROOT / "benchmarks" / "results" / "methods" / "cost_table.md").read_text()
    main = {r["config"]["name"]: r for r in (json.loads(p.read_text()) for p in (ROOT / "benchmarks" / "results").glob("*.json"))
            if "comparisons" in r}
    found = [json.loads(p.read_text()) for p in sorted((ROOT / "benchmarks" / "results" / "methods").glob("*.json"))]
    assert committed == methods.cost_table(found, run._describe, main)
    assert "here and in the cost table above" in committed
