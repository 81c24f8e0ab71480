"""Tests of finefcace/sources/synthetic.py: the synthetic faces (spec/data.md, "Synthetic faces").

The two `slow` tests train a small CNN on the synthetic faces in the test itself and check
that the default bias knobs produce a real accuracy gap between tones on the balanced test
split, and that neutral knobs remove most of it (thresholds chosen from 8 seeds measured while
developing: default gap 0.12-0.21, neutral gap -0.02-0.03; see the module's report).
"""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from finefcace.sources.dataset import FaceTableDataset
from finefcace.sources.images import read_image
from finefcace.sources.synthetic import (
    TONES, SyntheticBias, _counterfactual, generate_synthetic, render_faces, render_synthetic,
    resolve_bias, sample_faces, synthetic_montage,
)
from finefcace.sources.table import CELEBA_ATTRIBUTES, load_table
from finefcace.sources.transforms import test_transform

matplotlib.use("Agg")


# ------------------------------------------------------------------------------ files and table
def test_generate_writes_pngs_and_a_table_the_dataset_reads(tmp_path):
    table = generate_synthetic(tmp_path / "syn", n_train=40, n_val=8, n_test=16, size=32, seed=0, threads=2)
    assert list(table.columns[:4]) == ["path", "split", "tone", "gender"]
    assert all(a in table.columns for a in CELEBA_ATTRIBUTES)
    assert table["split"].value_counts().to_dict() == {"train": 40, "test": 16, "val": 8}
    back = load_table(tmp_path / "syn" / "labels.csv")
    pd.testing.assert_frame_equal(back, table, check_dtype=False)
    recorded = json.loads((tmp_path / "syn" / "bias.json").read_text())
    assert recorded["size"] == 32 and recorded["cue_contrast"] == list(SyntheticBias().cue_contrast)
    dataset = FaceTableDataset(back, tmp_path / "syn", "gender", split="test", transform=test_transform(32))
    image, label, row = dataset[0]
    assert image.shape == (3, 32, 32) and row == 48 and label in (0, 1)
    first = read_image(tmp_path / "syn" / table["path"][0])
    assert first.size == (32, 32)


def test_deterministic_from_the_seed_whatever_the_threads(tmp_path):
    a = generate_synthetic(tmp_path / "a", n_train=70, n_val=0, n_test=8, size=24, seed=5, threads=1)
    b = generate_synthetic(tmp_path / "b", n_train=70, n_val=0, n_test=8, size=24, seed=5, threads=2)
    assert a.equals(b)
    for path in a["path"]:
        assert (tmp_path / "a" / path).read_bytes() == (tmp_path / "b" / path).read_bytes()
    other, _ = render_synthetic(n_train=70, n_val=0, n_test=8, size=24, seed=6)
    assert not other.drop(columns="path").equals(a.drop(columns="path"))
    # Changing the test size leaves the training faces unchanged (one stream per split).
    table, images = render_synthetic(n_train=70, n_val=0, n_test=20, size=24, seed=5)
    assert table[table["split"] == "train"].equals(a[a["split"] == "train"])
    assert np.array_equal(images[0].numpy(), np.asarray(read_image(tmp_path / "a" / a["path"][0])))


def test_stale_table_is_removed_before_writing(tmp_path):
    generate_synthetic(tmp_path, n_train=8, n_val=0, n_test=8, size=16)
    (tmp_path / "bias.json").write_text("{}")
    with pytest.raises(ValueError):
        generate_synthetic(tmp_path, n_train=8, n_val=0, n_test=8, size=16, correlation=2.0)
    assert (tmp_path / "labels.csv").is_file()  # a bad knob fails before anything is touched
    generate_synthetic(tmp_path, n_train=4, n_val=0, n_test=8, size=16)
    assert len(load_table(tmp_path / "labels.csv")) == 12


# ------------------------------------------------------------------------------ sampling and knobs
def test_test_split_is_balanced_and_train_follows_the_knobs():
    bias = SyntheticBias()
    test = sample_faces(800, split="test", bias=bias, rng=np.random.default_rng(0)).labels
    assert test.groupby(["tone", "gender"]).size().eq(100).all() and len(test.groupby(["tone", "gender"])) == 8
    train = sample_faces(20_000, split="train", bias=bias, rng=np.random.default_rng(1)).labels
    shares = train["tone"].value_counts(normalize=True).reindex(TONES).to_numpy()
    np.testing.assert_allclose(shares, bias.tone_proportions, atol=0.015)
    male = train.groupby("tone")["gender"].apply(lambda g: (g == "Male").mean())
    assert male["tone_4"] > male["tone_1"] + 0.2  # target–group correlation in training
    by_gender = train.groupby("gender")[["Smiling", "Wearing_Hat"]].mean()
    assert by_gender.loc["Female", "Smiling"] > by_gender.loc["Male", "Smiling"] + 0.2
    assert by_gender.loc["Male", "Wearing_Hat"] > by_gender.loc["Female", "Wearing_Hat"] + 0.1
    # Test split: no correlation between attributes and gender.
    big_test = sample_faces(20_000, split="test", bias=bias, rng=np.random.default_rng(2)).labels
    by_gender = big_test.groupby("gender")["Smiling"].mean()
    assert abs(by_gender["Female"] - by_gender["Male"]) < 0.03
    # Neutral: equal tones, no correlation.
    neutral = sample_faces(20_000, split="train", bias=SyntheticBias.neutral(), rng=np.random.default_rng(3)).labels
    np.testing.assert_allclose(neutral["tone"].value_counts(normalize=True).to_numpy(), 0.25, atol=0.015)
    male = neutral.groupby("tone")["gender"].apply(lambda g: (g == "Male").mean())
    assert male.between(0.47, 0.53).all()
    # Hair colours are one category each: at most one hair attribute per face.
    hair = train[["Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair"]].sum(axis=1)
    assert hair.max() == 1 and (hair == 0).mean() > 0.05


def test_knobs_are_validated_with_their_names():
    with pytest.raises(TypeError, match=r"unknown bias knob\(s\) \['contrast'\].*cue_contrast"):
        resolve_bias(contrast=0.5)
    with pytest.raises(ValueError, match="cue_contrast needs 4 values"):
        SyntheticBias(cue_contrast=(1, 1))
    with pytest.raises(ValueError, match="correlation must be in"):
        SyntheticBias(correlation=-0.1)
    with pytest.raises(ValueError, match="rotation must be finite and non-negative"):
        SyntheticBias(rotation=-1)
    with pytest.raises(ValueError, match="bias must be"):
        resolve_bias("very biased")
    assert resolve_bias("neutral", noise=0.0) == SyntheticBias.neutral(noise=0.0)
    with pytest.raises(ValueError, match="at least 16"):
        render_faces(sample_faces(2, split="test", bias=SyntheticBias(), rng=np.random.default_rng(0)), 8)


# ------------------------------------------------------------------------------ rendering
def _pair(target, *, tone="tone_1", n=16, size=64, bias=None):
    bias = (bias or SyntheticBias()).without_nuisance()
    base = sample_faces(n, split="test", bias=bias, rng=np.random.default_rng(0))
    base.labels["tone"] = tone
    off, on = _counterfactual(base, target)
    return render_faces(off, size, bias).float(), render_faces(on, size, bias).float()


@pytest.mark.parametrize("target", ["gender", *CELEBA_ATTRIBUTES])
def test_every_target_is_drawn(target):
    off, on = _pair(target)
    changed = (off - on).abs().amax(-1) > 8
    assert changed.flatten(1).any(1).all(), f"{target} changes nothing on some faces"


@pytest.mark.parametrize("target", ["Bags_Under_Eyes", "High_Cheekbones", "Mouth_Slightly_Open",
                                    "Narrow_Eyes", "Smiling"])
def test_several_cues_are_small_and_local(target):
    off, on = _pair(target)
    changed = ((off - on).abs().amax(-1) > 8).float().mean((1, 2))
    assert changed.max() < 0.02  # under 2 % of the pixels at 64 px
    # ...and inside the face: nothing changes in the outer border of the image.
    border = (off - on).abs()[:, :, :8].amax() + (off - on).abs()[:, :, -8:].amax()
    assert border == 0


def test_cue_contrast_scales_the_local_cues():
    full = _pair("Bags_Under_Eyes", bias=SyntheticBias(cue_contrast=(1, 1, 1, 1)))
    faint = _pair("Bags_Under_Eyes", bias=SyntheticBias(cue_contrast=(1, 1, 1, 0.3)), tone="tone_4")
    strong = _pair("Bags_Under_Eyes", bias=SyntheticBias(cue_contrast=(1, 1, 1, 1)), tone="tone_4")
    ratio = (faint[0] - faint[1]).abs().sum() / (strong[0] - strong[1]).abs().sum()
    assert 0.2 < ratio < 0.4
    assert (full[0] - full[1]).abs().sum() > 0


def test_any_size_and_nuisance_changes_pixels_not_labels():
    sample = sample_faces(6, split="test", bias=SyntheticBias(), rng=np.random.default_rng(0))
    for size in (16, 33, 128):
        assert render_faces(sample, size).shape == (6, size, size, 3)
    still = render_faces(sample, 48, SyntheticBias().without_nuisance())
    moving = render_faces(sample, 48, SyntheticBias())
    assert not torch.equal(still, moving)


def test_montages_show_groups_and_counterfactual_attributes():
    figure = synthetic_montage("groups", size=32, per_cell=2)
    assert len(figure.axes) == len(TONES) * 4
    assert "synthetic" in " ".join(t.get_text() for t in figure.texts)
    figure = synthetic_montage("attributes", size=32, per_cell=1, nuisance=False)
    assert len(figure.axes) == 14 * 2
    # each face is labelled with its class of the row's target, never "off"/"on"
    titles = [ax.get_title() for ax in figure.axes]
    assert titles[:2] == ["Female", "Male"] and titles[2:] == ["no", "yes"] * 13
    from finefcace.plots import alt_text

    assert "one row per target" in alt_text(figure) and "Female or Male" in alt_text(figure)
    from finefcace.plots import MIN_TEXT_PT, smallest_text_as_shown

    for figure in (synthetic_montage("groups", size=32, per_cell=4), figure):  # the book's: 4 a cell
        assert smallest_text_as_shown(figure)[0] >= MIN_TEXT_PT  # legible at the book's width
    with pytest.raises(ValueError, match="kind must be"):
        synthetic_montage("ages")


# ------------------------------------------------------------------------------ the bias is real
def _tone_gap(bias: str, seed: int, *, size: int = 40, n_train: int = 800, epochs: int = 10) -> float:
    """Train a small CNN for gender on the synthetic training split (CPU, seconds) and return
    mean accuracy of tone_1..tone_3 minus accuracy of tone_4 on the balanced test split."""
    table, images = render_synthetic(n_train=n_train, n_val=0, n_test=1600, size=size, seed=seed, bias=bias)
    x = images.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    y = torch.tensor((table["gender"] == "Male").to_numpy(), dtype=torch.long)
    train = torch.tensor((table["split"] == "train").to_numpy())
    x_train, y_train, x_test, y_test = x[train], y[train], x[~train], y[~train]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # deterministic and cheap on a busy 2-core machine
    try:
        torch.manual_seed(seed)

        def block(i: int, o: int) -> nn.Module:
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))

        net = nn.Sequential(block(3, 16), block(16, 32), block(32, 64), block(64, 64),
                            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 2))
        optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
        steps = epochs * ((len(x_train) + 31) // 32)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
        generator = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            order = torch.randperm(len(x_train), generator=generator)
            for start in range(0, len(x_train), 32):
                index = order[start:start + 32]
                batch = x_train[index]
                flip = torch.rand(len(index), generator=generator) < 0.5
                batch = torch.where(flip[:, None, None, None], batch.flip(3), batch)
                loss = nn.functional.cross_entropy(net(batch), y_train[index])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
        net.eval()
        with torch.no_grad():
            correct = (net(x_test).argmax(1) == y_test).numpy()
    finally:
        torch.set_num_threads(threads)
    accuracy = pd.Series(correct).groupby(table.loc[~train.numpy(), "tone"].to_numpy()).mean()
    print(f"{bias} seed {seed}: accuracy per tone {accuracy.round(3).to_dict()} (synthetic data)")
    return float(accuracy[list(TONES[:3])].mean() - accuracy["tone_4"])


_GAPS: dict[str, float] = {}


def _mean_gap(bias: str) -> float:
    if bias not in _GAPS:
        _GAPS[bias] = float(np.mean([_tone_gap(bias, seed) for seed in (0, 1)]))
    return _GAPS[bias]


@pytest.mark.slow
def test_default_bias_gives_a_baseline_a_group_gap():
    gap = _mean_gap("default")
    print(f"default knobs: tone_1..3 minus tone_4 accuracy = {gap:.3f} (mean of 2 seeds)")
    assert gap > 0.07


@pytest.mark.slow
def test_neutral_knobs_remove_most_of_the_gap():
    neutral = _mean_gap("neutral")
    default = _mean_gap("default")
    print(f"neutral knobs: gap {neutral:.3f} vs default {default:.3f} (mean of 2 seeds)")
    assert neutral < 0.04
    assert neutral < 0.4 * default
