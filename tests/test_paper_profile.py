"""The paper profile runs through the course notebooks end to end (on a CPU, bounded).

`configs/paper_fairface.yaml` is what a GPU user runs: ResNet-50, 448 × 448 px, batch 16,
the `paper` preset. Here every notebook of the course executes with that profile through
papermill, as `scripts/course.py` would — only the data (a tiny synthetic table rendered at
448 px instead of FairFace), the pretrained weights (none: no download here) and the amount
of work (one training batch, one evaluation batch, one epoch; the ablation lists shortened
so chapter 6 trains nothing new) are changed. It proves that the paper-size path is wired:
the profile's keys reach the notebooks, a 448-px ResNet-50 FineFACE and baseline train,
checkpoint, reload and evaluate, and every chapter renders.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
import yaml

from finefcace.course.parameters import declared_parameters

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def paper_profile_on_tiny_data(tmp_path: Path) -> dict:
    profile = yaml.safe_load((ROOT / "configs" / "paper_fairface.yaml").read_text())
    assert (profile["backbone"], profile["input_size"], profile["batch_size"]) == ("resnet50", 448, 16)
    profile.update(
        dataset="synthetic", root=str(tmp_path / "data"), table=None,
        # 2 training images: the profile's batch size stays 16, the one batch holds 2 images
        # (a CPU cannot afford 16 at 448 px in a test; 2 is BatchNorm's least), one Female and
        # one Male of two tones (seed 2), so that both classes and, for chapter 7's group DRO,
        # two protected domains are seen; 2 validation images, both classes; 8 test images,
        # one per tone x gender. Each 448-px ResNet-50 image costs seconds: none more than needed.
        synthetic={"n_train": 2, "n_val": 2, "n_test": 8, "size": 448, "seed": 2},
        weights=None, epochs=1, max_batches=1, max_eval_batches=1, workers=0, device="cpu",
        run_dir=str(tmp_path / "runs"), n_bootstrap=20, attributes=[],
        ablation_epochs=1, ablation_max_batches=1,  # = the main budget: chapter 6 reuses chapter 4's model
        poolings=["gmp"], expert_sets=[[3, 4, 5]], presets=["paper"], thresholds=[0.5],
    )
    return profile


def outputs_text(path: Path) -> str:
    notebook = nbformat.read(path, as_version=4)
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            parts.append(output.get("text", "") or data.get("text/markdown", "") or data.get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.slow
def test_the_paper_profile_runs_every_chapter(tmp_path):
    papermill = pytest.importorskip("papermill")
    profile = paper_profile_on_tiny_data(tmp_path)
    texts = {}
    for source in sorted(NOTEBOOKS.glob("*.ipynb")):
        declared = declared_parameters(source)
        unknown = set(profile) - {k for nb in NOTEBOOKS.glob("*.ipynb") for k in declared_parameters(nb)}
        assert not unknown, f"profile keys no notebook declares: {unknown}"
        target = tmp_path / source.name
        papermill.execute_notebook(str(source), str(target), cwd=str(NOTEBOOKS), kernel_name="python3",
                                   parameters={k: v for k, v in profile.items() if k in declared},
                                   progress_bar=False)
        texts[source.stem] = outputs_text(target)

    # chapter 2: the paper's ResNet-50 at 448 px
    assert "resnet50 at 448 px" in texts["02_experts"] and "56x56" in texts["02_experts"]
    # chapter 4 trained both models at the paper's size and batch, and chapter 5 loaded them
    for method in ("baseline", "finefcace"):
        config = yaml.safe_load((tmp_path / "runs" / f"gender-{method}" / "config.json").read_text())
        resolved = config["resolved"]
        assert (resolved["backbone"], resolved["input_size"], resolved["batch_size"]) == ("resnet50", 448, 16)
        assert (tmp_path / "runs" / f"gender-{method}" / "predictions_test.csv").is_file()
    assert "synthetic faces, resnet50 from scratch, 448 px, 1 epoch" in texts["04_training"]
    assert "loading the finished run" in texts["05_evaluation"]
    # chapter 6 reused chapter 4's model for its reference: nothing else was trained; chapter 7
    # trained its one live run, a method that uses protected labels, at the paper's size too
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["gender-baseline", "gender-finefcace",
                                                                     "gender-group_dro"]
    assert "trains with protected labels: tone" in texts["07_mitigation_methods"]
