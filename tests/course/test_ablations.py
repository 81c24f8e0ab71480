"""finefcace.course.ablations: every fusion subset agrees with the library's fused inference."""

from __future__ import annotations

import pytest

from finefcace.course import ablations
from tests.course_fixtures import small_models  # noqa: F401  (a fixture)


def test_fusion_subsets_agree_with_fused_inference(small_models):
    import numpy as np
    import torch

    from finefcace import predict

    model, _ = small_models
    images = torch.randn(6, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    loader = [(images[:4], torch.tensor([0, 1, 0, 1]), torch.arange(4)),
              (images[4:], torch.tensor([1, 0]), torch.arange(4, 6))]
    scores = ablations.fusion_scores(model, loader)
    assert scores["heads"] == ["e_1", "e_2", "e_3", "concat"] and scores["raw"].shape == (4, 6, 2)
    for views, heads, options in [("raw+oval", "all", {}), ("raw", "concat", {"views": ("raw",), "heads": "concat"}),
                                  ("oval", "e_2", {"views": ("oval",), "heads": 1}),
                                  ("raw+oval", "experts", {"heads": "experts"})]:
        expected = predict.fused_logits(model, images, **options).argmax(dim=1).numpy()
        assert np.array_equal(ablations.fusion_predictions(scores, views, heads), expected), (views, heads)
    with pytest.raises(ValueError, match="heads="):
        ablations.fusion_predictions(scores, "raw", "e_9")


def test_threshold_sweep_in_one_pass_equals_one_pass_per_threshold(small_models):
    import numpy as np
    import torch

    model, _ = small_models
    images = torch.randn(5, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    loader = [(images[:3], torch.tensor([0, 1, 0]), torch.arange(3)), (images[3:], torch.tensor([1, 0]), torch.arange(3, 5))]
    swept = ablations._scores_by_threshold(model, loader, [0.2, 0.5, 0.8, 0.5], pad=0.1, max_batches=None)
    assert list(swept) == [0.2, 0.5, 0.8]
    for t, scores in swept.items():
        alone = ablations.fusion_scores(model, loader, threshold=t)
        assert torch.allclose(scores["oval"], alone["oval"]) and torch.allclose(scores["raw"], alone["raw"])
        assert np.array_equal(scores["oval_share"], alone["oval_share"])
    assert swept[0.2]["oval_share"].mean() >= swept[0.8]["oval_share"].mean()


def test_the_budget_note_says_plainly_when_the_reference_has_not_learned():
    import numpy as np
    import pandas as pd

    from finefcace.metrics import gender_task_report

    rng = np.random.default_rng(0)
    n = 800
    frame = pd.DataFrame({"tone": rng.choice(["tone_1", "tone_4"], n), "gender": rng.choice(["Female", "Male"], n)})
    frame["y_true"] = (frame["gender"] == "Male").astype(int)
    frame["y_pred"] = 1  # says "Male" to everyone: women at 0 %
    degenerate = ablations.budget_note(gender_task_report(frame, n_bootstrap=50), 2, 15)
    assert degenerate.startswith("At 2 epochs of at most 15 batches, the reference reaches")
    # women at 0 %: far below chance, a systematic error — never called "near chance"
    assert "far below chance (0.0 %" in degenerate and "near chance" not in degenerate
    assert "not which design choice is better" in degenerate and "larger budget" not in degenerate
    frame["y_pred"] = np.where(rng.random(n) < 0.55, frame["y_true"], 1 - frame["y_true"])  # barely learned
    barely = ablations.budget_note(gender_task_report(frame, n_bootstrap=50), 2, 15)
    assert "near chance: the model has barely learned" in barely
    frame["y_pred"] = np.where(rng.random(n) < 0.95, frame["y_true"], 1 - frame["y_true"])
    learned = ablations.budget_note(gender_task_report(frame, n_bootstrap=50), 4)
    assert learned.startswith("At 4 epochs, the reference") and "clearly above chance" in learned


def test_budget_cost_is_computed_from_the_runs_own_history():
    import pandas as pd

    class Run:
        history = pd.DataFrame({"epoch": [1, 2, 3], "batches": [50, 50, 50], "val_accuracy": [0.75, 0.89, 0.96],
                                "epoch_seconds": [100.0, 120.0, 110.0]})

    text = ablations.budget_cost(Run(), trainings=7)
    assert "reached 75 % after epoch 1, 89 % after epoch 2, 96 % after epoch 3" in text
    assert "an epoch took 110 s here" in text
    assert "A budget of 2 such epochs for the 7 trainings of this chapter would take about 26 min per seed" in text
    assert "77 min for 3 seeds" in text


def test_the_chapters_runs_get_the_ablation_studys_arm_names():
    reference, gap, five, official = object(), object(), object(), object()
    arms = ablations.study_arms(reference, {"gmp": reference, "gap": gap}, {"3, 4, 5": reference, "5": five},
                                {"paper": reference, "official_code": official})
    assert arms == {"reference": reference, "pooling-gap": gap, "experts-5": five, "preset-official_code": official}


def test_the_ablation_study_names_its_arms_as_the_chapter_does():
    """experiments/seeds.py builds the study's arms with the same names study_arms gives the runs."""
    import importlib.util
    from pathlib import Path

    from finefcace.training.config import TrainConfig

    path = Path(__file__).resolve().parents[2] / "experiments" / "seeds.py"
    spec = importlib.util.spec_from_file_location("seeds_under_test", path)
    seeds = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(seeds)
    config = TrainConfig(backbone="resnet18", input_size=64)
    arms = seeds.ablation_arms(config, {"poolings": ["gmp", "gap"], "expert_sets": [[5], [3, 4, 5]],
                                        "presets": ["paper", "official_code"]})
    assert [arm.name for arm in arms] == ["reference", "pooling-gap", "experts-5", "preset-official_code"]
