"""finefcace.course_figures: the walkthrough of paper §3.2 and the image grid of a dataset table."""

from __future__ import annotations

from course_fixtures import small_models  # noqa: F401  (a fixture)
from finefcace import attention_walkthrough, course_figures


def test_walkthrough_and_region_grid_have_a_panel_per_step(small_models):
    import torch

    model, _ = small_models
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    steps = attention_walkthrough.attention_steps(model, images, threshold=0.5, pad=0.1)
    figure = course_figures.walkthrough_figure(images, steps, index=1, caption="synthetic test")
    assert len(figure.axes) == 4 * 6  # 3 experts + the overall map, 6 steps each
    assert len(course_figures.region_grid(images, steps).axes) == 3 * 5  # input, A_1..A_3, A_oval


def test_table_montage_has_a_row_per_protected_group(tmp_path):
    import pandas as pd
    from PIL import Image

    rows = []
    for i, (race, gender) in enumerate([("A", "Female"), ("A", "Male"), ("B", "Female"), ("B", "Male")] * 2):
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(tmp_path / f"{i}.png")
        rows.append({"path": f"{i}.png", "split": "test", "race": race, "gender": gender})
    figure = course_figures.table_montage(pd.DataFrame(rows), tmp_path, per_group=3, size=8, title="t")
    assert len(figure.axes) == 4 * 3
    assert [ax.get_ylabel() for ax in figure.axes[::3]] == ["A / Female", "A / Male", "B / Female", "B / Male"]
