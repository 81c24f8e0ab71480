"""The GPU check (``scripts/gpu_check.py``): its CPU rehearsal, its stage machinery, its report.

The whole command runs here with ``--tiny`` on a CPU, with the notebook and plotting packages
made unimportable (as on the GPU machine), so it cannot rot between GPU leases. No speed is
asserted: only that every stage ran and recorded what it should.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.py"
PUBLISHED = ROOT / "benchmarks" / "results" / "gpu" / "gpu_check.md"
#: Absent from the GPU machine, or optional: the library must import and train without them.
BLOCKED = ("matplotlib", "seaborn", "sklearn", "fairlearn", "h5py", "papermill", "nbval", "nbformat",
           "jupyter_book", "IPython", "ipykernel")


BLOCKER = """import sys
from importlib.machinery import PathFinder


class PathFinderWithout(PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            return None
        return super().find_spec(name, path, target)


sys.meta_path[:] = [PathFinderWithout if finder is PathFinder else finder for finder in sys.meta_path]
"""


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gpu_check", module)
    spec.loader.exec_module(module)
    return module


gpu_check = load_script()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("gpu_check")
    blocker = tmp_path_factory.mktemp("blocker")
    # Loaded at start-up by every Python of the run (pytest's too): the path finder no longer finds
    # the blocked packages, so they look and behave as not installed.
    (blocker / "sitecustomize.py").write_text(BLOCKER.format(blocked=BLOCKED))
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker), str(ROOT)]))
    done = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--out", str(out), "--work", str(out / "work")],
                          cwd=out, env=environment, capture_output=True, text=True, timeout=900)
    return done, out


@pytest.mark.slow
def test_tiny_run_passes_every_stage_without_the_notebook_tooling(tiny_run):
    done, out = tiny_run
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    results = json.loads((out / "gpu_check.json").read_text())
    stages = results["stages"]
    assert list(stages) == [name for name, _ in gpu_check.STAGES]
    assert results["setting"]["name"] == "tiny" and results["finished"]
    assert set(gpu_check.OPTIONAL_PACKAGES) <= set(results["environment"]["absent_optional_packages"])
    assert stages["import"]["details"]["optional_imported"] == []
    cuda_only = {"attention_no_host_sync", "gpu_tests"}
    for name, record in stages.items():
        if name in cuda_only and not torch.cuda.is_available():
            assert record["status"] == "skipped" and "no CUDA" in record["summary"], (name, record)
        elif name in gpu_check.STUDY_STAGES:  # real photographs only with --utkface (their own test below)
            assert record["status"] == "skipped" and "no --utkface" in record["summary"], record
        else:
            assert record["status"] == "ok", (name, record)
        assert record["seconds"] >= 0
    assert "1 skipped" in stages["gpu_tests"]["summary"]  # pytest ran the gpu test file, without nbval


@pytest.mark.slow
def test_the_study_stages_run_the_studies_on_a_carried_photo_subset(realfaces_dir, tmp_path):
    """The GPU machine's path for real photographs: scripts/photo_subset.py makes a small
    stratified copy (what the device tool carries), and the check's study stages train the
    input-size study and the region controls on it — here at the tiny setting, without the
    plotting packages, as on the GPU machine: the results files are written, the Markdown is left
    for later."""
    subset = tmp_path / "utkface_subset"
    made = subprocess.run([sys.executable, str(ROOT / "scripts" / "photo_subset.py"), "--utkface",
                           str(realfaces_dir / "utkface"), "--out", str(subset), "--max-mib", "2"],
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    files = list((subset / "UTKFace").iterdir())
    assert 200 < len(files) and sum(f.stat().st_size for f in files) <= 2 * 2**20
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCKER.format(blocked=BLOCKED))
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker), str(ROOT)]), OMP_NUM_THREADS="1")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--out", str(out), "--only", "resolution,controls",
                           "--utkface", str(subset)], cwd=tmp_path, env=environment, capture_output=True,
                          text=True, timeout=900)
    expected_arms = {"resolution": ["baseline-64px", "finefcace-64px"],
                     "controls": ["baseline-64px", "baseline-updates-64px", "finefcace-64px", "no-regions-64px",
                                  "placebo-64px"]}
    for study, arms in expected_arms.items():
        stage = json.loads((out / "gpu_check.json").read_text())["stages"][study]
        assert done.returncode == 0 and stage["status"] == "ok", (stage, done.stdout[-3000:])
        runs = out / study / "runs"
        assert sorted(p.parent.parent.name for p in runs.glob("*/seed0/predictions_test.csv")) == arms
        assert not list(runs.rglob("*.pt"))  # no model files come back
        assert "deepest_map_side" in json.loads((runs / "finefcace-64px" / "seed0" / "measures.json").read_text())
        # back here, with the metrics packages: the study reported from the saved runs, models not needed
        report = tmp_path / f"report_{study}"
        command = stage["details"]["report_command"].replace("<out>", str(out)).replace("<folder>", str(report))
        assert command.startswith(f"python experiments/{study}.py --saved-runs ")
        reported = subprocess.run([sys.executable, *command.split()[1:]], cwd=ROOT, capture_output=True, text=True,
                                  timeout=300)
        assert reported.returncode == 0, reported.stderr[-3000:]
        results = json.loads((report / f"{study}.json").read_text())
        assert sorted({r["arm"] for r in results["runs"]}) == arms
        assert [r.get("deepest_map_side") for r in results["runs"] if r["arm"] == "finefcace-64px"] == [2.0]
        assert (report / f"{study}.md").is_file()


@pytest.mark.slow
def test_tiny_run_records_checks_measurements_and_training(tiny_run):
    _, out = tiny_run
    stages = json.loads((out / "gpu_check.json").read_text())["stages"]
    assert stages["crop_matches_reference"]["details"]["max_abs_difference"] < 1e-4
    assert all(v == v for v in stages["bf16_channels_last_iteration"]["details"]["losses"].values())
    resume = stages["checkpoint_resume"]["details"]
    assert resume["stopped_position"]["step"] == 1 and resume["final_position"] == resume["reference_position"]
    assert resume["tensors_differing"] == [] and resume["momentum_identical"]

    measurement = stages["measurement"]["details"]
    rows = {r["workload"]: r for r in measurement["throughput"]}
    assert set(gpu_check.WORKLOAD_LABELS) <= set(rows)
    for name in ("baseline_train", "finefcace_train", "published_train", "fused_infer"):
        assert rows[name]["images_per_second"] > 0 and rows[name]["flops"] > 0 and rows[name]["tflops"] > 0
        assert rows[name]["mfu"] is None  # no bf16 peak on record for a CPU: unknown, never guessed
    assert rows["finefcace_train"]["flops"] > rows["baseline_train"]["flops"]
    assert {"crop_speedup", "train_time_over_flop_ratio"} <= set(measurement["targets"])
    compiled = {r["workload"]: r for r in stages["measurement_compiled"]["details"]["throughput"]}
    assert set(compiled) == set(gpu_check.COMPILED_WORKLOADS)
    assert all(r["speedup_over_eager"] > 0 and r["first_call_seconds"] > 0 for r in compiled.values())

    training = stages["training"]["details"]
    assert len(training["epochs"]) == 5 and training["loss_last_epoch"] < training["loss_first_epoch"]
    assert set(training["checkpoint_bytes"]) == {"last.pt", "best.pt"}
    assert training["reloaded_rows"] == 8 and 0 <= training["reloaded_test_accuracy"] <= 1


@pytest.mark.slow
def test_tiny_run_writes_and_prints_the_tables(tiny_run):
    done, out = tiny_run
    report = (out / "gpu_check.md").read_text()
    assert report in done.stdout  # printed at the end
    assert "A CPU rehearsal, not a GPU measurement" in report
    for label in [*gpu_check.STAGE_LABELS.values(), "| Workload | Images/s |", "MFU of a FineFACE training iteration",
                  gpu_check.import_project().TARGET_LABELS["crop_speedup"], "Paper-profile training on SYNTHETIC faces"]:
        assert label in report, label
    assert "Compiled images/s" in report
    assert "== training" in (out / "gpu_check.log").read_text()


# ------------------------------------------------------------------------------ fast checks


def test_bf16_peaks_match_the_most_specific_name_and_unknown_gpus_get_none():
    assert gpu_check.bf16_peak_tflops("NVIDIA H200") == 989.0
    assert gpu_check.bf16_peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert gpu_check.bf16_peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert gpu_check.bf16_peak_tflops("NVIDIA L40S") == 362.0
    assert gpu_check.bf16_peak_tflops("Tesla V100-SXM2-16GB") is None
    row = gpu_check.throughput_row("x", 0.5, 16, int(100e12), None)
    assert row["images_per_second"] == 32 and row["tflops"] == 200 and row["mfu"] is None
    assert gpu_check.throughput_row("x", 0.5, 16, int(100e12), 800.0)["mfu"] == 0.25


def _check(tmp_path: Path, budget: float, limits: dict[str, float]):
    setting = gpu_check.make_setting("tiny", budget)
    setting.stage_limits = limits
    return gpu_check.Check(setting, tmp_path, tmp_path, None)


def test_a_stage_that_fails_errs_or_overruns_is_recorded_and_the_rest_still_runs(tmp_path):
    check = _check(tmp_path, budget=60, limits={"slow": 1.0, "broken": 5, "fine": 5, "dependent": 5})
    check.RESERVE_S = 0.5
    check.run("slow", lambda c: time.sleep(30))
    check.run("broken", lambda c: 1 / 0)
    check.run("fine", lambda c: gpu_check.outcome(False, "the check did not hold", value=3))
    check.run("dependent", lambda c: c.require("broken"))
    stages = json.loads((tmp_path / "gpu_check.json").read_text())["stages"]
    assert stages["slow"]["status"] == "timeout" and stages["slow"]["seconds"] < 5
    assert stages["broken"]["status"] == "error" and "ZeroDivisionError" in stages["broken"]["summary"]
    assert stages["fine"]["status"] == "failed" and stages["fine"]["details"] == {"value": 3}
    assert stages["dependent"]["status"] == "skipped" and "'broken'" in stages["dependent"]["summary"]
    report = (tmp_path / "gpu_check.md").read_text()
    assert "| slow | timeout |" in report and "| broken | error |" in report


def test_no_stage_starts_without_time_left_in_the_budget(tmp_path):
    check = _check(tmp_path, budget=1, limits={"late": 60})
    record = check.run("late", lambda c: gpu_check.done("ran"))
    assert record["status"] == "skipped" and "out of time" in record["summary"]


def test_the_gpu_machines_torch_is_admitted_by_pyproject():
    """The GPU machine has torch 2.11 / torchvision 0.26; requirements.txt pins newer ones."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    ranges = {Requirement(d).name: Requirement(d).specifier for d in dependencies}
    assert ranges["torch"].contains("2.11.0") and ranges["torchvision"].contains("0.26.0")


def test_the_cost_chapter_shows_the_published_gpu_table_or_says_it_is_not_yet_measured():
    cost = (ROOT / "book" / "cost.md").read_text()
    assert "{include} ../benchmarks/results/gpu/gpu_check.md" in cost
    assert "python scripts/gpu_check.py --out" in cost
    published = PUBLISHED.read_text()
    if "Generated by `python scripts/gpu_check.py`" in published:
        # only a GPU run may be published: it names its GPU and its date
        assert "setting `paper`" in published and "A CPU rehearsal" not in published
        assert "started 20" in published
    else:
        assert "Not yet measured" in published


@pytest.fixture
def tiny_threads():
    """The tiny setting's intra-op threads (one: more slow tiny models down on shared cores)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(gpu_check.make_setting("tiny").threads)
    yield
    torch.set_num_threads(previous)


def test_the_attention_stage_guards_the_trainers_own_attention_calls(tmp_path, monkeypatch, tiny_threads):
    """The stage is CUDA-only; here the sync-debug switch is recorded instead of set, so that its
    wiring — the trainer's attention calls (the CAMs, then every region), each guarded, the originals
    restored — is checked."""
    check = _check(tmp_path, budget=120, limits={})
    check.project = gpu_check.import_project()
    check.results["stages"]["import"] = {"status": "ok"}
    check.cuda = True  # the tensors stay on the CPU
    modes = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *args: None)
    monkeypatch.setattr(torch.cuda, "get_sync_debug_mode", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", modes.append)
    attention = check.project.attention
    originals = [getattr(attention, name) for name in gpu_check.ATTENTION_STEP]

    result = gpu_check.stage_attention_no_host_sync(check)
    assert result["status"] == "ok", result
    assert result["details"]["guarded_calls"] == list(gpu_check.ATTENTION_STEP)
    assert modes == ["error", 0] * len(gpu_check.ATTENTION_STEP)
    assert [getattr(attention, name) for name in gpu_check.ATTENTION_STEP] == originals

    def synchronising(*args, **kwargs):  # a host sync: an error only under set_sync_debug_mode("error")
        if modes and modes[-1] == "error":
            raise RuntimeError("called a synchronizing CUDA operation")
        return originals[1](*args, **kwargs)

    monkeypatch.setattr(attention, "regions_from_cams", synchronising)
    result = gpu_check.stage_attention_no_host_sync(check)
    assert result["status"] == "failed" and "synchronizing" in result["summary"]
    assert attention.regions_from_cams is synchronising  # what was there before the stage, restored


def test_folders_that_cannot_work_are_refused_before_any_stage(tmp_path, capsys):
    """One line ``error: ...`` and exit 2 at once, not a traceback (a --out that is a file) or a
    failure minutes later (a --utkface that is not a UTKFace download)."""
    (tmp_path / "afile").write_text("x")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "fairface_label_train.csv").write_text("file\n")
    subset = tmp_path / "subset" / "UTKFace"
    subset.mkdir(parents=True)
    (subset / "25_0_1_20170110000000001.jpg.chip.jpg").write_bytes(b"\xff\xd8")
    refused = {"--out afile": ["--out", str(tmp_path / "afile")],
               "--work afile": ["--out", str(tmp_path / "o"), "--work", str(tmp_path / "afile")],
               "--utkface nowhere": ["--out", str(tmp_path / "o"), "--utkface", str(tmp_path / "nowhere")],
               "--utkface other": ["--out", str(tmp_path / "o"), "--utkface", str(tmp_path / "other")]}
    for what, argv in refused.items():
        with pytest.raises(SystemExit) as exited:
            gpu_check.parse_args(["--tiny", *argv])
        message = capsys.readouterr().err
        assert exited.value.code == 2 and message.startswith("error: --") and message.count("\n") == 1, (what, message)
    assert not (tmp_path / "o").exists()
    args = gpu_check.parse_args(["--tiny", "--out", str(tmp_path / "o"), "--utkface", str(tmp_path / "subset")])
    assert args.utkface == tmp_path / "subset"


def test_the_reports_are_written_by_the_projects_one_atomic_writer_without_importing_the_package():
    assert gpu_check.OUTPUTS.__file__ == str(ROOT / "finefcace" / "outputs.py")
    assert gpu_check.OUTPUTS.__name__ != "finefcace.outputs"  # loaded by path: `import finefcace` is a stage
