"""finefcace.course.training: the hyper-parameter and iteration tables of chapter 04."""

from __future__ import annotations

from finefcace.course import session as course
from finefcace.course import training
from tests.course_fixtures import small_models  # noqa: F401  (a fixture)


def test_hyperparameter_table_marks_what_the_profile_changed():
    config = course.train_config({"backbone": "resnet18", "input_size": 64, "overrides": {"head_lr": 0.01}})
    table = training.hyperparameter_table(config)
    assert set(table.index[table["changed"] == "yes"]) == {"backbone", "input_size", "head_lr"}
    assert config.progress is False


def test_iteration_table_reports_what_each_step_updates(small_models):
    import torch

    from finefcace.mutual_learning import step_names
    from finefcace.training.recipe import build_model, build_optimizer

    config = course.train_config({"backbone": "resnet18", "input_size": 64, "overrides": {"descriptor_dim": 16}})
    torch.manual_seed(0)
    model = build_model(config, 2)
    optimizer = build_optimizer(model, config.resolved())
    images, labels = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 0, 1])
    steps = training.iteration_table(model, optimizer, images, labels, generator=torch.Generator().manual_seed(0))
    assert list(steps["name"]) == step_names(3)
    assert list(steps["updated"]) == ["stages 1-5, F_3, f_3", "stages 1-4, F_2, f_2", "stages 1-3, F_1, f_1",
                                      "stages 1-5, F_1, f_1, F_2, f_2, F_3, f_3, f_oval",
                                      "stages 1-5, F_1, F_2, F_3, f_oval"]
    assert steps.loc[4, "input"] == "A_oval" and steps.loc[1, "input"] == "raw"
