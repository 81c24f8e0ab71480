"""The real-photograph CPU profile runs through every chapter (../shared/realfaces; skipped where absent).

`configs/utkface_cpu.yaml` trains on real UTKFace photographs and tests across datasets on FairFace and
CelebA photographs. Here every notebook executes with that profile through papermill, pointed at
../shared/realfaces as `scripts/course.py --set root=...` would, with the amount of work cut (one training
batch, one evaluation batch, one epoch, the ablation lists shortened): it proves that the profile's keys
reach the notebooks, that chapter 1 splits UTKFace and makes the cross-dataset tables, that a chapter that
assumes synthetic data or CelebA attributes says what it skips, and that every chapter renders on real
photographs. The whole book under this profile is measured by `scripts/course.py` (book/status.md).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
import yaml

from finefcace.course.parameters import declared_parameters

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def outputs_text(path: Path) -> str:
    parts = []
    for cell in nbformat.read(path, as_version=4).cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", "") or output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.slow
def test_the_real_profile_runs_every_chapter_on_real_photographs(realfaces_dir, tmp_path):
    papermill = pytest.importorskip("papermill")
    profile = yaml.safe_load((ROOT / "configs" / "utkface_cpu.yaml").read_text())
    assert (profile["dataset"], profile["backbone"], profile["input_size"]) == ("utkface", "resnet18", 64)
    assert profile["dataset_options"]["splits"] == "seeded" and profile["attributes"] == []
    profile.update(
        root=str(realfaces_dir / "utkface"), table=str(tmp_path / "tables" / "utkface.csv"),
        cross_datasets={"fairface": str(realfaces_dir / "fairface"), "celeba": str(realfaces_dir / "celeba")},
        dataset_options={**profile["dataset_options"], "max_train": 64},
        epochs=1, max_batches=1, max_eval_batches=1, device="cpu", run_dir=str(tmp_path / "runs"), n_bootstrap=20,
        ablation_epochs=1, ablation_max_batches=1,  # = the main budget: chapter 6 reuses chapter 4's model
        poolings=["gmp"], expert_sets=[[3, 4, 5]], presets=["paper"], thresholds=[0.5],
    )
    declared_anywhere = {k for nb in NOTEBOOKS.glob("*.ipynb") for k in declared_parameters(nb)}
    assert not set(profile) - declared_anywhere
    texts = {}
    for source in sorted(NOTEBOOKS.glob("*.ipynb")):
        declared = declared_parameters(source)
        target = tmp_path / source.name
        papermill.execute_notebook(str(source), str(target), cwd=str(NOTEBOOKS), kernel_name="python3",
                                   parameters={k: v for k, v in profile.items() if k in declared},
                                   progress_bar=False)
        texts[source.stem] = outputs_text(target)
    # chapter 1: UTKFace split by the profile, its duplicates reported, the cross-dataset tables whole
    assert "140 of them with conflicting labels" in texts["01_dataset_preparation"]
    assert "fairface: 540 images" in texts["01_dataset_preparation"]
    # chapters 4-5: trained on real photographs, evaluated per race x gender and across datasets
    assert "utkface, resnet18 from scratch, 64 px, 1 epoch" in texts["04_training"]
    assert "UTKFace has no attribute labels: the attribute task" in texts["05_evaluation"]
    assert "White / Female" in texts["05_evaluation"] and "East Asian" in texts["05_evaluation"]
    # chapter 3 fine-tunes chapter 4's FineFACE at 128 px; chapter 7 trains its one live mitigation run
    from finefcace.mitigation import MITIGATIONS

    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs[:3] == ["gender-baseline", "gender-finefcace", "gender-finefcace-128px"]
    assert len(runs) == 4 and runs[3].removeprefix("gender-") in MITIGATIONS
