"""Synthetic faces: the embedded default dataset (``notebooks/01_dataset_preparation.ipynb``).

Real faces cannot ship with the project and a CPU cannot train on them quickly, so the course
generates its own labelled faces, deterministically, in seconds. Faces are rendered
procedurally and in batches with ``torch`` (no per-pixel Python loop): background clutter,
shoulders, hair, face with jaw, ears, brows, eyes, nose, mouth, optional glasses, hat, bangs,
under-eye shading and cheek highlight.

- **Protected attributes**: ``tone`` in ``tone_1..tone_4`` — a skin-tone *rendering
  parameter*, light to dark, not a race — and a binary presented ``gender``.
- **Targets**: ``gender`` and the 13 CelebA attribute names (:data:`CELEBA_ATTRIBUTES`),
  each drawn as the cue it names. Several cues are small and local (brows, stubble, lips,
  under-eye shading, cheek highlight, eye opening, mouth curvature and opening): the regime
  FineFACE is about.
- **Bias knobs** (:class:`SyntheticBias`): tone proportions and target–group correlation in
  the training (and validation) split; contrast of the local cues per tone (all splits: it is
  how a group is rendered); nuisance variation (position, scale, rotation, lighting gradient,
  background clutter, noise). The **test split is balanced**: equal tone × gender cells and no
  target–group correlation, so per-group metrics are reliable.

Why the defaults give a gap: gender is carried by coarse cues that are the same on every tone
— hair length (:data:`LONG_HAIR_SHARE`: long for most women and few men, strong but wrong for
the long-haired men and short-haired women) and jaw width (weak) — and by local cues (brow
weight, stubble, lip colour) that are clear, except on ``tone_4``, whose local cues are drawn at
lower contrast and which is rare in training and skewed towards ``Male``. A model that relies
on hair length is equally (in)accurate on every tone; the group gap comes from the local
cues, which the rendered images still hold for a model that looks closely.

Introduced in the book in ``notebooks/01_dataset_preparation.ipynb``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from finefcace.errors import UserError
from finefcace.sources.table import CELEBA_ATTRIBUTES, GENDERS, save_table

TONES: tuple[str, ...] = ("tone_1", "tone_2", "tone_3", "tone_4")
#: The smallest image side the renderer draws a face at (pixels).
MIN_SIZE = 16

#: Mean skin colour per tone (RGB in [0, 1]), light to dark. Rendering parameters only.
SKIN_RGB = np.array([
    [0.93, 0.78, 0.67],
    [0.82, 0.64, 0.50],
    [0.66, 0.48, 0.35],
    [0.55, 0.39, 0.28],
], dtype=np.float32)

#: Hair colour categories; ``red`` sets none of the four CelebA hair-colour attributes.
HAIR_COLOURS: tuple[str, ...] = ("black", "brown", "blond", "gray", "red")
HAIR_RGB = np.array([
    [0.09, 0.08, 0.08],
    [0.36, 0.22, 0.12],
    [0.86, 0.74, 0.44],
    [0.68, 0.68, 0.70],
    [0.62, 0.27, 0.12],
], dtype=np.float32)
HAIR_PREVALENCE = np.array([0.30, 0.25, 0.20, 0.10, 0.15])
#: +1: more frequent among ``Male`` faces when the correlation knob is on (as in CelebA).
HAIR_GENDER_DIRECTION = np.array([0.5, -0.4, -1.0, 1.0, 0.0])
_HAIR_ATTRIBUTE = {"Black_Hair": 0, "Brown_Hair": 1, "Blond_Hair": 2, "Gray_Hair": 3}

#: Base prevalence of the non-hair attributes (test split; train/val tilt it by gender).
ATTRIBUTE_PREVALENCE: dict[str, float] = {
    "Bags_Under_Eyes": 0.30, "Bangs": 0.25, "Chubby": 0.25, "Eyeglasses": 0.25,
    "High_Cheekbones": 0.40, "Mouth_Slightly_Open": 0.40, "Narrow_Eyes": 0.25,
    "Smiling": 0.45, "Wearing_Hat": 0.20,
}
#: Direction of the attribute–gender correlation (+1 more frequent among ``Male``).
ATTRIBUTE_GENDER_DIRECTION: dict[str, float] = {
    "Bags_Under_Eyes": 1.0, "Bangs": -1.0, "Chubby": 1.0, "Eyeglasses": 1.0,
    "High_Cheekbones": -1.0, "Mouth_Slightly_Open": -0.5, "Narrow_Eyes": 0.5,
    "Smiling": -1.0, "Wearing_Hat": 1.0,
}
#: Share of faces with long hair, per presented gender, on every tone and in every split: a
#: coarse gender cue as strong as it is crude (hair length alone classifies gender correctly
#: for (0.80 + 1 − 0.12) / 2 = 84 % of the balanced test split), and one the tone does not weaken.
LONG_HAIR_SHARE: dict[str, float] = {"Male": 0.12, "Female": 0.80}
#: Shift of P(Male | tone) in train/val per unit of correlation: the rare tone_4 is mostly Male.
TONE_MALE_SKEW = np.array([-0.10, 0.0, 0.10, 0.40])

#: Size of the face frame in the image (1: the face frame's [-1, 1] spans the image).
FACE_ZOOM = 1.3

#: Faces rendered per batch. Fixed, so that images do not depend on any speed setting.
CHUNK = 64


@dataclass(frozen=True)
class SyntheticBias:
    """The bias knobs of the synthetic faces. Defaults give a measurable gap.

    - ``tone_proportions``: share of ``tone_1..tone_4`` in train/val (test is balanced).
    - ``correlation``: target–group correlation in train/val, 0 (none) to 1: P(Male | tone)
      shifts by ``correlation·TONE_MALE_SKEW`` and each attribute's prevalence by
      ``±correlation·min(p, 1−p)`` between genders (``ATTRIBUTE_GENDER_DIRECTION``).
    - ``cue_contrast``: per tone, multiplies the contrast of the local cues (brows, stubble,
      lips, mouth, nose, under-eye shading, cheek highlight) in every split.
    - nuisance: ``position`` (std of the shift, in half-image units), ``scale`` (std of the
      log scale), ``rotation`` (std, degrees), ``lighting`` (max gradient amplitude),
      ``clutter`` (background rectangles' colour amplitude), ``noise`` (pixel noise std).

    Introduced in ``notebooks/01_dataset_preparation.ipynb``.
    """

    tone_proportions: tuple[float, ...] = (0.4, 0.3, 0.2, 0.1)
    correlation: float = 0.6
    cue_contrast: tuple[float, ...] = (1.0, 1.0, 0.8, 0.3)
    position: float = 0.04
    scale: float = 0.06
    rotation: float = 6.0
    lighting: float = 0.3
    clutter: float = 0.25
    noise: float = 0.03

    def __post_init__(self) -> None:
        for name in ("tone_proportions", "cue_contrast"):
            given = getattr(self, name)
            if not isinstance(given, (list, tuple)) or not all(_is_number(v) for v in given):
                raise SyntheticOptionError(f"bias knob {name!r} needs {len(TONES)} numbers (one per tone "
                                           f"{TONES}), got {given!r} (e.g. {name}=1,1,0.8,0.3)")
            value = tuple(float(v) for v in given)
            if len(value) != len(TONES):
                raise SyntheticOptionError(f"{name} needs {len(TONES)} values (one per {TONES}), got {value}")
            if any(not v >= 0 or v == float("inf") for v in value):
                raise SyntheticOptionError(f"{name} must be finite and non-negative, got {value}")
            object.__setattr__(self, name, value)
        if sum(self.tone_proportions) <= 0:
            raise SyntheticOptionError(f"tone_proportions must not all be 0, got {self.tone_proportions}")
        for f in ("correlation", "position", "scale", "rotation", "lighting", "clutter", "noise"):
            if not _is_number(getattr(self, f)):
                raise SyntheticOptionError(f"bias knob {f!r} must be a number, got {getattr(self, f)!r}")
        if not 0.0 <= self.correlation <= 1.0:
            raise SyntheticOptionError(f"correlation must be in [0, 1], got {self.correlation}")
        for f in ("position", "scale", "rotation", "lighting", "clutter", "noise"):
            if not 0 <= getattr(self, f) < float("inf"):
                raise SyntheticOptionError(f"{f} must be finite and non-negative, got {getattr(self, f)}")

    @classmethod
    def neutral(cls, **overrides: Any) -> "SyntheticBias":
        """Equal tone proportions, no correlation, equal cue contrast (nuisance unchanged)."""
        values = dict(tone_proportions=(0.25,) * 4, correlation=0.0, cue_contrast=(1.0,) * 4)
        values.update(overrides)
        return cls(**values)

    def without_nuisance(self) -> "SyntheticBias":
        """The same bias with no pose, lighting, clutter or noise variation (for figures)."""
        return replace(self, position=0.0, scale=0.0, rotation=0.0, lighting=0.0, clutter=0.0, noise=0.0)


class SyntheticOptionError(UserError, TypeError):
    """A count, the size or a bias knob of the synthetic faces is unknown, mistyped or out of
    range (a ``TypeError`` too, as an unknown keyword argument is)."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def check_generation(*, n_train: Any, n_val: Any, n_test: Any, size: Any) -> None:
    """Refuse counts and sizes :func:`generate_synthetic` cannot render, before anything is written."""
    for name, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
            raise SyntheticOptionError(f"synthetic option {name!r} must be a whole number >= 0, got {value!r}")
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < MIN_SIZE:
        raise SyntheticOptionError(f"synthetic option 'size' must be a whole number of pixels >= {MIN_SIZE}, "
                                   f"got {size!r}")


def resolve_bias(bias: SyntheticBias | str | None = None, **knobs: Any) -> SyntheticBias:
    """``bias`` (a :class:`SyntheticBias`, ``"default"`` or ``"neutral"``) with ``knobs`` applied."""
    if bias is None or bias == "default":
        base = SyntheticBias()
    elif bias == "neutral":
        base = SyntheticBias.neutral()
    elif isinstance(bias, SyntheticBias):
        base = bias
    else:
        raise SyntheticOptionError(f"bias must be a SyntheticBias, 'default' or 'neutral', got {bias!r}")
    names = {f.name for f in fields(SyntheticBias)}
    unknown = sorted(set(knobs) - names)
    if unknown:
        raise SyntheticOptionError(f"unknown bias knob(s) {unknown}; the knobs are {sorted(names)}")
    return replace(base, **knobs) if knobs else base


# --------------------------------------------------------------------------------------
# Sampling: labels and the latent rendering variables
# --------------------------------------------------------------------------------------

@dataclass
class FaceSample:
    """Labels (one row per face) plus the latent variables the renderer turns into pixels.

    ``labels`` columns: ``tone``, ``gender``, the 13 attributes (0/1), ``hair_colour``.
    ``latents``: name → array of length ``n`` (or ``(n, k)``), unit-scale random draws.
    Flipping a label column and re-rendering gives the counterfactual face.
    """

    labels: pd.DataFrame
    latents: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: Sequence[int] | np.ndarray | slice) -> "FaceSample":
        labels = self.labels.iloc[index].reset_index(drop=True)
        return FaceSample(labels, {k: v[index] for k, v in self.latents.items()})


_N_CLUTTER = 6


def sample_faces(n: int, *, split: str, bias: SyntheticBias, rng: np.random.Generator) -> FaceSample:
    """Draw ``n`` faces for ``split``: biased for train/val, balanced for test (see module doc).

    Introduced in ``notebooks/01_dataset_preparation.ipynb``.
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val or test, got {split!r}")
    n = int(n)
    if n < 0:
        raise ValueError(f"number of faces must be >= 0, got {n}")
    if split == "test":
        # Balanced: every tone x gender cell gets n/8 faces (the remainder spread in order).
        cells = np.arange(n) % (2 * len(TONES))
        rng.shuffle(cells)
        tone = cells // 2
        male = (cells % 2).astype(bool)
        correlation = 0.0
    else:
        p = np.asarray(bias.tone_proportions, dtype=float)
        tone = rng.choice(len(TONES), size=n, p=p / p.sum())
        p_male = np.clip(0.5 + bias.correlation * TONE_MALE_SKEW[tone], 0.02, 0.98)
        male = rng.random(n) < p_male
        correlation = bias.correlation
    sign = np.where(male, 1.0, -1.0)

    labels: dict[str, Any] = {
        "tone": np.asarray(TONES)[tone],
        "gender": np.where(male, GENDERS[1], GENDERS[0]),
    }
    for name, p in ATTRIBUTE_PREVALENCE.items():
        shift = correlation * ATTRIBUTE_GENDER_DIRECTION[name] * min(p, 1 - p) * sign
        labels[name] = (rng.random(n) < p + shift).astype(np.int64)
    # Hair colour: one category per face, prevalence tilted by gender under correlation.
    logits = np.log(HAIR_PREVALENCE)[None, :] + 1.2 * correlation * sign[:, None] * HAIR_GENDER_DIRECTION[None, :]
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    hair = (rng.random(n)[:, None] > np.cumsum(probs, axis=1)).sum(axis=1).clip(0, len(HAIR_COLOURS) - 1)
    for name, index in _HAIR_ATTRIBUTE.items():
        labels[name] = (hair == index).astype(np.int64)
    labels["hair_colour"] = np.asarray(HAIR_COLOURS)[hair]
    order = ["tone", "gender", *CELEBA_ATTRIBUTES, "hair_colour"]
    frame = pd.DataFrame({k: labels[k] for k in order})

    normal = lambda *shape: rng.standard_normal((n, *shape)).astype(np.float32)  # noqa: E731
    uniform = lambda *shape: rng.random((n, *shape)).astype(np.float32)  # noqa: E731
    latents = {
        "skin": normal(), "skin_hue": normal(), "face_width": normal(), "face_height": normal(),
        "jaw": normal(), "long_hair": uniform(), "hair_shade": normal(), "brow": normal(),
        "brow_arch": normal(), "stubble": uniform(), "lips": uniform(), "eye_spacing": normal(),
        "eye_size": normal(), "iris": uniform(), "gaze": normal(), "mouth": normal(),
        "expression": uniform(), "glasses": uniform(), "hat": uniform(3), "clothes": uniform(3),
        "background": uniform(3), "clutter_box": uniform(_N_CLUTTER, 4),
        "clutter_colour": uniform(_N_CLUTTER, 3), "shift": normal(2), "log_scale": normal(),
        "angle": normal(), "light_direction": uniform(), "light_strength": uniform(),
    }
    return FaceSample(frame, latents)


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------

class _Canvas:
    """A batch of images in progress plus per-pixel face coordinates (u, v).

    (u, v) is the face frame: pose (shift, scale, rotation) is applied by transforming the
    pixel grid once, so every shape is drawn in an upright, centred frame. Shapes are
    evaluated only in the pixel window that contains them for the whole batch.
    """

    def __init__(self, size: int, shift: np.ndarray, scale: np.ndarray, angle: np.ndarray) -> None:
        self.size = size
        self.batch = len(scale)
        self.pixel = 2.0 / size  # one pixel in image units ([-1, 1] across the image)
        self.shift, self.scale, self.angle = shift, scale, angle
        centres = (torch.arange(size, dtype=torch.float32) + 0.5) * self.pixel - 1.0
        self.axis = centres
        scale = scale * FACE_ZOOM
        self.scale = scale
        tx, ty = _t(shift[:, 0]), _t(shift[:, 1])
        cos, sin = _t(np.cos(angle) / scale), _t(np.sin(angle) / scale)
        x = centres.view(1, 1, -1) - tx
        y = centres.view(1, -1, 1) - ty
        self.u = cos * x + sin * y
        self.v = cos * y - sin * x
        self.image = torch.empty(self.batch, 3, size, size)
        # Edge softness in face units: one pixel, whatever the face's scale.
        self.soft = torch.from_numpy((self.pixel / scale).astype(np.float32)).view(-1, 1, 1)

    def window(self, u0: Any, u1: Any, v0: Any, v1: Any) -> tuple[slice, slice]:
        """Pixel rows/columns covering the face-frame box [u0,u1]x[v0,v1] for every face."""
        b = self.batch
        corners_u = np.stack([np.broadcast_to(np.asarray(u, np.float64), (b,)) for u in (u0, u1, u0, u1)], 1)
        corners_v = np.stack([np.broadcast_to(np.asarray(v, np.float64), (b,)) for v in (v0, v0, v1, v1)], 1)
        cos = (np.cos(self.angle) * self.scale)[:, None]
        sin = (np.sin(self.angle) * self.scale)[:, None]
        x = cos * corners_u - sin * corners_v + self.shift[:, :1]
        y = sin * corners_u + cos * corners_v + self.shift[:, 1:]
        to_index = lambda t: (t + 1.0) / self.pixel - 0.5  # noqa: E731
        x0 = int(np.clip(math.floor(to_index(x.min())) - 1, 0, self.size))
        x1 = int(np.clip(math.ceil(to_index(x.max())) + 2, 0, self.size))
        y0 = int(np.clip(math.floor(to_index(y.min())) - 1, 0, self.size))
        y1 = int(np.clip(math.ceil(to_index(y.max())) + 2, 0, self.size))
        return slice(y0, max(y0, y1)), slice(x0, max(x0, x1))

    def coords(self, win: tuple[slice, slice]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.u[:, win[0], win[1]], self.v[:, win[0], win[1]], self.soft

    def paint(self, win: tuple[slice, slice], alpha: torch.Tensor, colour: torch.Tensor) -> None:
        """Lay ``colour`` ((B,3) or (B,3,h,w)) over the window with coverage ``alpha`` (B,h,w)."""
        view = self.image[:, :, win[0], win[1]]
        if colour.dim() == 2:
            colour = colour[:, :, None, None]
        view.lerp_(colour.expand_as(view), alpha.unsqueeze(1))

    def shade(self, win: tuple[slice, slice], alpha: torch.Tensor, offset: torch.Tensor) -> None:
        """Add a colour ``offset`` (B,3) weighted by ``alpha``: a cue of fixed absolute contrast."""
        view = self.image[:, :, win[0], win[1]]
        view.addcmul_(alpha.unsqueeze(1), offset[:, :, None, None])


def _t(array: np.ndarray) -> torch.Tensor:
    """(B,) numpy → (B,1,1) float tensor, to broadcast over a pixel window."""
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).view(-1, 1, 1)


def _ellipse(u: torch.Tensor, v: torch.Tensor, soft: torch.Tensor, cu: Any, cv: Any, au: Any, av: Any) -> torch.Tensor:
    """Anti-aliased coverage of the ellipse centred (cu, cv) with half-axes (au, av)."""
    au, av = torch.as_tensor(au, dtype=torch.float32), torch.as_tensor(av, dtype=torch.float32)
    r = torch.hypot(torch.addcmul(-cu / au, u, 1.0 / au), torch.addcmul(-cv / av, v, 1.0 / av))
    # coverage = (1 - r)·min(au, av)/soft + 1/2, clamped: one fused multiply-add.
    k = torch.minimum(au, av) / soft
    return torch.addcmul(k + 0.5, r, -k).clamp_(0.0, 1.0)


def _step(distance: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """Coverage of the region where ``distance`` > 0 (edge one pixel wide)."""
    return (distance / soft).add_(0.5).clamp_(0.0, 1.0)


def render_faces(
    sample: FaceSample, size: int = 64, bias: SyntheticBias | None = None, *, seed: int = 0,
    threads: int | None = None,
) -> torch.Tensor:
    """Render a :class:`FaceSample` as a ``uint8`` tensor (n, size, size, 3).

    Deterministic in (sample, size, bias, seed) — whatever ``threads`` — because each batch of
    :data:`CHUNK` faces draws its pixel noise from its own seeded generator.
    Introduced in ``notebooks/01_dataset_preparation.ipynb``.
    """
    bias = bias or SyntheticBias()
    out = torch.empty(len(sample), int(size), int(size), 3, dtype=torch.uint8)

    def keep(start: int, pixels: torch.Tensor) -> None:
        out[start:start + len(pixels)] = pixels

    for_each_chunk(sample, size, bias, keep, seed=seed, threads=threads)
    return out


def default_threads() -> int:
    """Rendering threads: the CPUs this process may use, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


def for_each_chunk(
    sample: FaceSample, size: int, bias: SyntheticBias, consume: Any, *, seed: int = 0,
    threads: int | None = None,
) -> None:
    """Render ``sample`` chunk by chunk and call ``consume(start, uint8 pixels (k,H,W,3))``.

    Chunks are rendered by ``threads`` parallel threads, each running torch single-threaded
    (torch's intra-op threads are set to 1 meanwhile, then restored): these many small
    element-wise ops scale across chunks, while splitting each op across cores costs more
    than it gains — on a busy shared machine, 20x more. ``consume`` may be called from
    several threads.
    """
    size = int(size)
    if size < MIN_SIZE:
        raise SyntheticOptionError(f"size must be at least {MIN_SIZE} pixels, got {size}")
    threads = default_threads() if threads is None else max(1, int(threads))
    starts = range(0, len(sample), CHUNK)

    def task(start: int) -> None:
        chunk = sample.take(slice(start, start + CHUNK))
        generator = torch.Generator().manual_seed((int(seed) * 1_000_003 + start // CHUNK) % (2**63))
        consume(start, _render_chunk(chunk, size, bias, generator))

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if threads == 1 or len(starts) <= 1:
            for start in starts:
                task(start)
        else:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                for job in [pool.submit(task, start) for start in starts]:
                    job.result()
    finally:
        torch.set_num_threads(previous)


def _render_chunk(sample: FaceSample, size: int, bias: SyntheticBias, generator: torch.Generator) -> torch.Tensor:
    lab, z = sample.labels, sample.latents
    b = len(sample)
    male = (lab["gender"].to_numpy() == GENDERS[1])
    sign = np.where(male, 1.0, -1.0).astype(np.float32)
    tone = pd.Index(TONES).get_indexer(lab["tone"])
    if (tone < 0).any():
        raise ValueError(f"unknown tone values {sorted(set(lab['tone'][tone < 0]))}; expected {TONES}")
    attr = {name: lab[name].to_numpy().astype(np.float32) for name in CELEBA_ATTRIBUTES}
    contrast = np.asarray(bias.cue_contrast, dtype=np.float32)[tone]
    c = torch.from_numpy(contrast).view(-1, 1)  # (B,1) multiplies colour offsets

    # Pose (nuisance): shift, scale, rotation, clipped to 2.5 std.
    shift = np.clip(z["shift"], -2.5, 2.5).astype(np.float64) * bias.position
    scale = np.exp(np.clip(z["log_scale"], -2.5, 2.5).astype(np.float64) * bias.scale)
    angle = np.deg2rad(np.clip(z["angle"], -2.5, 2.5).astype(np.float64) * bias.rotation)
    canvas = _Canvas(size, shift, scale, angle)

    # ---- background: a plain colour plus soft rectangles of clutter (rank-1 each: cheap) ----
    axis = canvas.axis
    box = torch.from_numpy(z["clutter_box"]) * 2.4 - 1.2  # (B,K,4) in image units
    lo_x, hi_x = torch.minimum(box[..., 0], box[..., 1]), torch.maximum(box[..., 0], box[..., 1])
    lo_y, hi_y = torch.minimum(box[..., 2], box[..., 3]), torch.maximum(box[..., 2], box[..., 3])
    px = canvas.pixel
    in_x = torch.minimum(axis.view(1, 1, -1) - lo_x[..., None], hi_x[..., None] - axis.view(1, 1, -1)).div_(px).add_(0.5).clamp_(0, 1)
    in_y = torch.minimum(axis.view(1, 1, -1) - lo_y[..., None], hi_y[..., None] - axis.view(1, 1, -1)).div_(px).add_(0.5).clamp_(0, 1)
    colours = (torch.from_numpy(z["clutter_colour"]) * 2 - 1) * bias.clutter  # (B,K,3)
    rows = in_y.transpose(1, 2).unsqueeze(1) * colours.permute(0, 2, 1).unsqueeze(2)  # (B,3,S,K)
    torch.matmul(rows, in_x.unsqueeze(1), out=canvas.image)
    canvas.image.add_(torch.from_numpy(0.25 + 0.5 * z["background"])[:, :, None, None])

    # ---- face geometry (face frame: face centre near (0, 0.06), image half-size 1) ----
    fcv = 0.06
    width = 0.36 + 0.05 * attr["Chubby"] + 0.01 * sign + 0.012 * z["face_width"]
    height = 0.47 + 0.012 * z["face_height"]
    jaw = np.clip(0.84 + 0.03 * sign + 0.04 * z["jaw"] + 0.06 * attr["Chubby"], 0.7, 1.05)
    skin_np = SKIN_RGB[tone] * (1.0 + 0.04 * z["skin"][:, None]) + np.array([0.015, 0.0, -0.015], np.float32) * z["skin_hue"][:, None]
    skin = torch.from_numpy(np.clip(skin_np, 0, 1).astype(np.float32))
    hair_index = pd.Index(HAIR_COLOURS).get_indexer(lab["hair_colour"])
    hair = torch.from_numpy(np.clip(HAIR_RGB[hair_index] * (1 + 0.08 * z["hair_shade"][:, None]), 0, 1).astype(np.float32))
    long_hair = z["long_hair"] < np.where(male, LONG_HAIR_SHARE["Male"], LONG_HAIR_SHARE["Female"])

    # ---- long hair behind the head ----
    if long_hair.any():
        w_back = width * 1.28
        win = canvas.window(-w_back.max(), w_back.max(), fcv - 0.3, 1.0)
        u, v, s = canvas.coords(win)
        back = _ellipse(u, v, s, 0.0, fcv + 0.22, _t(w_back), 0.62)
        back.mul_(_t(long_hair.astype(np.float32)))
        canvas.paint(win, back, hair)

    # ---- neck ----
    win = canvas.window(-0.2, 0.2, fcv + 0.25, 1.0)
    u, v, s = canvas.coords(win)
    half_neck = _t(0.14 + 0.02 * sign)
    neck = _step(half_neck - u.abs(), s).mul_(_step(v - (fcv + 0.25), s))
    canvas.paint(win, neck, skin * 0.82)

    # ---- shoulders and clothes ----
    win = canvas.window(-0.9, 0.9, 0.55, 1.5)
    u, v, s = canvas.coords(win)
    clothes = torch.from_numpy(0.15 + 0.7 * z["clothes"])
    canvas.paint(win, _ellipse(u, v, s, 0.0, 1.0, 0.8, 0.42), clothes)

    # ---- hair on the skull (visible around the top and sides of the face) ----
    skull_w = width * np.where(long_hair, 1.16, 1.09)
    win = canvas.window(-skull_w.max(), skull_w.max(), fcv - height.max() - 0.12, fcv + 0.2)
    u, v, s = canvas.coords(win)
    skull = _ellipse(u, v, s, 0.0, fcv - 0.07, _t(skull_w), _t(height * 1.0))
    skull.mul_(_step(fcv + 0.1 - v, s))
    canvas.paint(win, skull, hair)

    # ---- ears ----
    ear_u = width * 0.98
    win = canvas.window(-ear_u.max() - 0.06, ear_u.max() + 0.06, fcv - 0.15, fcv + 0.12)
    u, v, s = canvas.coords(win)
    ears = _ellipse(u.abs(), v, s, _t(ear_u), fcv - 0.02, 0.045, 0.085)
    canvas.paint(win, ears, skin * 0.9)

    # ---- face: an ellipse whose lower half narrows with the jaw; radial shading ----
    win = canvas.window(-width.max(), width.max(), fcv - height.max(), fcv + height.max())
    u, v, s = canvas.coords(win)
    tw, th = _t(width), _t(height)
    half_width = torch.where(v > fcv, tw * _t(jaw), tw)
    r = torch.hypot(u / half_width, (v - fcv) / th)
    face = (1.0 - r).mul_(torch.minimum(half_width, th) / s).add_(0.5).clamp_(0, 1)
    shading = r.square_().mul_(-0.13).add_(1.0).unsqueeze(1)
    canvas.paint(win, face, skin[:, :, None, None] * shading)

    # ---- stubble (local gender cue, contrast x tone): darkens the lower face of male faces ----
    stubble = np.where(male, 0.35 + 0.65 * z["stubble"], 0.0).astype(np.float32)
    low = ((v - (fcv + 0.13)) / 0.06).clamp_(0.0, 1.0).mul_(face)
    canvas.shade(win, low, torch.from_numpy(stubble).view(-1, 1) * c * torch.tensor([-0.17, -0.16, -0.14]))

    # ---- hairline on the forehead; bangs bring it down to the brows with a ragged edge ----
    bangs = attr["Bangs"]
    hairline = _t(np.where(bangs > 0, fcv - 0.19, fcv - 0.28 + 0.012 * z["hair_shade"]))
    arch = _t(np.where(bangs > 0, 0.25, 0.9))
    edge = hairline + arch * u.square()
    edge = edge + _t(bangs * 0.018) * torch.sin(u * 45.0).abs()
    # Cover the whole face support (not the anti-aliased coverage) so no skin rim shows.
    canvas.paint(win, _step(edge - v, s).mul_(face > 0), hair)

    # ---- cheek highlight (High_Cheekbones: local) ----
    cheek = attr["High_Cheekbones"]
    win_c = canvas.window(-0.32, 0.32, fcv + 0.0, fcv + 0.16)
    u, v, s = canvas.coords(win_c)
    highlight = _ellipse(u.abs(), v, s, 0.19, fcv + 0.075, 0.075, 0.045)
    canvas.shade(win_c, highlight, torch.from_numpy(cheek).view(-1, 1) * c * torch.tensor([0.13, 0.08, 0.07]))

    # ---- eyes: under-eye shading, sclera, iris; brows above ----
    eye_u = 0.15 + 0.008 * z["eye_spacing"]
    eye_v = fcv - 0.10
    eye_w = 0.07 + 0.004 * z["eye_size"]
    eye_h = np.where(attr["Narrow_Eyes"] > 0, 0.014, 0.034) + 0.003 * z["eye_size"]
    win = canvas.window(-0.3, 0.3, eye_v - 0.17, eye_v + 0.11)
    u, v, s = canvas.coords(win)
    ua = u.abs()
    bags = _ellipse(ua, v, s, _t(eye_u), eye_v + 0.05, 0.065, 0.022)
    canvas.shade(win, bags, torch.from_numpy(attr["Bags_Under_Eyes"]).view(-1, 1) * c * torch.tensor([-0.13, -0.15, -0.10]))
    sclera = _ellipse(ua, v, s, _t(eye_u), eye_v, _t(eye_w), _t(eye_h))
    canvas.paint(win, sclera, torch.tensor([0.93, 0.93, 0.89]).expand(b, 3))
    iris_rgb = torch.from_numpy(np.where(z["iris"][:, None] < 0.7, [[0.25, 0.15, 0.08]], [[0.20, 0.35, 0.55]]).astype(np.float32))
    iris = _ellipse(ua, v, s, _t(eye_u + 0.012 * np.clip(z["gaze"], -2, 2)), eye_v, 0.03, 0.03).mul_(sclera)
    canvas.paint(win, iris, iris_rgb)
    # Brows (local gender cue: weight; contrast x tone).
    brow_half = 0.013 + 0.006 * sign + 0.002 * z["brow"]
    brow_v = eye_v - 0.075 - 0.01 * z["brow_arch"]
    bent = v - _t(brow_v) + 1.6 * (ua - _t(eye_u)).square()
    brow = _ellipse(ua, bent, s, _t(eye_u), 0.0, 0.085, _t(np.clip(brow_half, 0.004, None)))
    canvas.shade(win, brow, c * torch.tensor([-0.32, -0.30, -0.27]))

    # ---- nose ----
    win = canvas.window(-0.06, 0.06, fcv - 0.02, fcv + 0.17)
    u, v, s = canvas.coords(win)
    nose = _ellipse(u, v, s, 0.0, fcv + 0.08, 0.022, 0.075).mul_(0.5)
    nostrils = _ellipse(u.abs(), v, s, 0.022, fcv + 0.14, 0.013, 0.009)
    canvas.shade(win, nose.add_(nostrils), c * torch.tensor([-0.10, -0.10, -0.09]))

    # ---- mouth: curvature (Smiling), opening (Mouth_Slightly_Open), lip colour (gender cue) ----
    smile = attr["Smiling"]
    mouth_v = fcv + 0.25
    mouth_w = 0.105 + 0.025 * smile + 0.005 * z["mouth"]
    curve = smile * (0.04 + 0.015 * z["expression"]) - 0.004
    win = canvas.window(-0.16, 0.16, mouth_v - 0.06, mouth_v + 0.06)
    u, v, s = canvas.coords(win)
    tmw = _t(mouth_w)
    across = (u / tmw).square_()
    centre_line = _t(mouth_v + 0.5 * curve) - _t(curve) * across
    dv = (v - centre_line).abs_()
    body = (1.0 - across).clamp_(min=0.0)
    lips = _step(0.016 * body + 0.003 - dv, s).mul_(_step(tmw - u.abs(), s))
    lip_female = torch.from_numpy(np.where(male, 0.0, 0.6 + 0.6 * z["lips"]).astype(np.float32)).view(-1, 1)
    lip_offset = c * (torch.tensor([-0.03, -0.12, -0.10]) + lip_female * torch.tensor([0.07, -0.07, -0.03]))
    canvas.shade(win, lips, lip_offset)
    opening = _t(attr["Mouth_Slightly_Open"] * (0.014 + 0.004 * z["expression"]))
    inner = _step(opening * (1.0 - (u / (tmw * 0.85)).square_()).clamp_(min=0.0) - dv, s)
    canvas.shade(win, inner, c * torch.tensor([-0.35, -0.33, -0.30]))

    # ---- eyeglasses: two rings, a bridge and the arms ----
    glasses = attr["Eyeglasses"]
    if glasses.any():
        win = canvas.window(-width.max() - 0.02, width.max() + 0.02, eye_v - 0.12, eye_v + 0.1)
        u, v, s = canvas.coords(win)
        ua = u.abs()
        ring_r = 0.085
        ring = torch.hypot(ua - _t(eye_u), v - eye_v)
        frame = _step(0.011 - (ring - ring_r).abs_(), s)
        bridge = _step(0.008 - (v - (eye_v - 0.01)).abs(), s).mul_(_step(_t(eye_u - ring_r + 0.005) - ua, s))
        arms = _step(0.007 - (v - (eye_v - 0.02)).abs(), s).mul_(_step(ua - _t(eye_u + ring_r - 0.005), s)).mul_(_step(_t(width * 1.01) - ua, s))
        coverage = torch.maximum(torch.maximum(frame, bridge), arms).mul_(_t(glasses))
        frame_rgb = torch.from_numpy(np.select(
            [z["glasses"][:, None] < 0.5, z["glasses"][:, None] < 0.8],
            [[[0.08, 0.08, 0.09]], [[0.40, 0.24, 0.12]]], [[0.70, 0.70, 0.74]]).astype(np.float32))
        canvas.paint(win, coverage, frame_rgb)

    # ---- hat: a crown over the hair and a brim at the hairline ----
    hat = attr["Wearing_Hat"]
    if hat.any():
        brim_v = fcv - 0.30
        win = canvas.window(-width.max() * 1.6, width.max() * 1.6, brim_v - 0.4, brim_v + 0.06)
        u, v, s = canvas.coords(win)
        crown = _ellipse(u, v, s, 0.0, brim_v, _t(width * 1.12), 0.36).mul_(_step(brim_v - v, s))
        brim = _ellipse(u, v, s, 0.0, brim_v, _t(width * 1.5), 0.04)
        coverage = torch.maximum(crown, brim).mul_(_t(hat))
        hat_rgb = torch.from_numpy((0.1 + 0.8 * z["hat"]).astype(np.float32))
        canvas.paint(win, coverage, hat_rgb)

    # ---- lighting gradient, pixel noise, quantisation ----
    image = canvas.image
    if bias.lighting > 0:
        direction = 2 * math.pi * z["light_direction"]
        strength = bias.lighting * z["light_strength"]
        gx = _t(strength * np.cos(direction) * 0.7)
        gy = _t(strength * np.sin(direction) * 0.7)
        ramp = (gx * axis.view(1, 1, -1) + gy * axis.view(1, -1, 1)).add_(1.0)
        image.mul_(ramp.unsqueeze(1))
    if bias.noise > 0:
        # Luminance noise in 2x2 blocks (sensor-like), added through a broadcast view: a
        # quarter of the random numbers, no upsampling copy.
        if size % 2 == 0:
            blocks = torch.randn(b, 1, size // 2, 1, size // 2, 1, generator=generator).mul_(bias.noise)
            image.view(b, 3, size // 2, 2, size // 2, 2).add_(blocks)
        else:
            image.add_(torch.randn(b, 1, size, size, generator=generator).mul_(bias.noise))
    return image.clamp_(0, 1).mul_(255).add_(0.5).to(torch.uint8).permute(0, 2, 3, 1)


# --------------------------------------------------------------------------------------
# Writing the dataset
# --------------------------------------------------------------------------------------

_SPLIT_STREAM = {"train": 0, "val": 1, "test": 2}


def synthetic_splits(
    *, n_train: int, n_val: int, n_test: int, seed: int = 0, bias: SyntheticBias | str | None = None,
    **bias_knobs: Any,
) -> dict[str, tuple[FaceSample, int]]:
    """The faces of each split and the seed of its pixel noise: what :func:`generate_synthetic`
    writes and :func:`render_synthetic` returns. Each split has its own random stream, so
    changing ``n_test`` does not change the training faces."""
    bias = resolve_bias(bias, **bias_knobs)
    streams = np.random.SeedSequence(int(seed)).spawn(3)
    out = {}
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        stream = streams[_SPLIT_STREAM[split]]
        sample = sample_faces(n, split=split, bias=bias, rng=np.random.default_rng(stream))
        out[split] = (sample, int(stream.generate_state(1)[0]))
    return out


def _split_table(split: str, sample: FaceSample) -> pd.DataFrame:
    table = sample.labels.copy()
    table.insert(0, "split", split)
    table.insert(0, "path", [f"{split}/{i:06d}.png" for i in range(len(sample))])
    return table


def render_synthetic(
    *, n_train: int, n_val: int, n_test: int, size: int = 64, seed: int = 0,
    bias: SyntheticBias | str | None = None, threads: int | None = None, **bias_knobs: Any,
) -> tuple[pd.DataFrame, torch.Tensor]:
    """The synthetic dataset in memory: (table, uint8 images (N, size, size, 3)) with row i of
    the table describing image i — the same faces and pixels :func:`generate_synthetic` writes
    for the same arguments (PNG is lossless). Introduced in notebook 01."""
    bias = resolve_bias(bias, **bias_knobs)
    splits = synthetic_splits(n_train=n_train, n_val=n_val, n_test=n_test, seed=seed, bias=bias)
    tables, images = [], []
    for split, (sample, noise_seed) in splits.items():
        tables.append(_split_table(split, sample))
        images.append(render_faces(sample, size, bias, seed=noise_seed, threads=threads))
    return pd.concat(tables, ignore_index=True), torch.cat(images)


def generate_synthetic(
    out_dir: str | os.PathLike,
    *,
    n_train: int,
    n_val: int,
    n_test: int,
    size: int = 64,
    seed: int = 0,
    bias: SyntheticBias | str | None = None,
    threads: int | None = None,
    **bias_knobs: Any,
) -> pd.DataFrame:
    """Render the synthetic dataset into ``out_dir``: PNGs under ``train/``, ``val/``,
    ``test/``, the table ``labels.csv`` (read it with :class:`finefcace.sources.dataset.FaceTableDataset`,
    root = ``out_dir``) and the knobs used, ``bias.json``. Returns the table.

    ``bias`` is a :class:`SyntheticBias`, ``"default"`` or ``"neutral"``; keyword knobs
    (``tone_proportions=...``, ``correlation=...``, ``cue_contrast=...``, nuisance) override
    it. Deterministic in (sizes, size, seed, bias); each split has its own random stream, so
    changing ``n_test`` does not change the training images. ``threads`` (default: the CPUs
    available, at most 8) render and encode chunks in parallel; the output does not depend on
    it. ``labels.csv`` is removed first and written last, so an interrupted run leaves no
    table that disagrees with the images. Introduced in ``notebooks/01_dataset_preparation.ipynb``.
    """
    from PIL import Image

    check_generation(n_train=n_train, n_val=n_val, n_test=n_test, size=size)
    bias = resolve_bias(bias, **bias_knobs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("labels.csv", "bias.json"):
        (out_dir / stale).unlink(missing_ok=True)
    splits = synthetic_splits(n_train=n_train, n_val=n_val, n_test=n_test, seed=seed, bias=bias)
    tables = []
    for split, (sample, noise_seed) in splits.items():
        table = _split_table(split, sample)
        paths = table["path"].tolist()
        (out_dir / split).mkdir(parents=True, exist_ok=True)

        def write(start: int, pixels: torch.Tensor, paths: list[str] = paths) -> None:
            for offset, array in enumerate(pixels.numpy()):
                Image.fromarray(array, "RGB").save(out_dir / paths[start + offset], compress_level=1)

        for_each_chunk(sample, size, bias, write, seed=noise_seed, threads=threads)
        tables.append(table)
    table = pd.concat(tables, ignore_index=True)
    save_table(table, out_dir / "labels.csv")
    (out_dir / "bias.json").write_text(_bias_json(bias, size=size, seed=seed))
    return table


def _bias_json(bias: SyntheticBias, **extra: Any) -> str:
    import json

    return json.dumps({"generator": "finefcace.sources.synthetic", **extra, **asdict(bias)}, indent=2) + "\n"


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------

def synthetic_montage(
    kind: str = "groups",
    *,
    size: int = 96,
    per_cell: int = 4,
    seed: int = 0,
    bias: SyntheticBias | str | None = None,
    nuisance: bool = True,
):
    """A matplotlib figure of synthetic faces (labelled "synthetic").

    ``kind="groups"``: one row per tone, ``per_cell`` faces of each gender (test-split
    sampling). ``kind="attributes"``: one row per target (gender and the 13 attributes), each a
    counterfactual pair — the same face rendered with the target off and on — ``per_cell``
    pairs per row, so the cue is the only difference. Introduced in notebook 01.
    """
    import matplotlib.pyplot as plt

    bias = resolve_bias(bias)
    if not nuisance:
        bias = bias.without_nuisance()
    rng = np.random.default_rng(seed)
    if kind == "groups":
        base = sample_faces(len(TONES) * 2 * per_cell, split="test", bias=bias, rng=rng)
        labels = base.labels
        order = np.lexsort((labels["gender"].to_numpy(), pd.Index(TONES).get_indexer(labels["tone"])))
        sample = base.take(order)
        pixels = render_faces(sample, size, bias, seed=seed).numpy()
        rows, cols = len(TONES), 2 * per_cell
        fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.2), squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.imshow(pixels[i])
            ax.set_xticks([])
            ax.set_yticks([])
            if i % cols == 0:
                ax.set_ylabel(TONES[i // cols])
            if i < cols:
                ax.set_title(sample.labels["gender"].iloc[i], fontsize=8)
        fig.suptitle("Synthetic faces by tone (rows) and gender (columns)")
    elif kind == "attributes":
        targets = ["gender", *CELEBA_ATTRIBUTES]
        base = sample_faces(per_cell, split="test", bias=bias, rng=rng)
        rows, cols = len(targets), 2 * per_cell
        fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.0, rows * 1.05), squeeze=False)
        for r, target in enumerate(targets):
            off, on = _counterfactual(base, target)
            pixels = render_faces(_interleave(off, on), size, bias, seed=seed).numpy()
            for k in range(cols):
                ax = axes[r, k]
                ax.imshow(pixels[k])
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title("off" if k % 2 == 0 else "on", fontsize=8)
            axes[r, 0].set_ylabel(target.replace("_", " "), fontsize=7, rotation=0, ha="right", va="center")
        fig.suptitle("Synthetic faces: each target off / on, all else equal")
    else:
        raise ValueError(f"kind must be 'groups' or 'attributes', got {kind!r}")
    fig.text(0.5, 0.005, "synthetic data (finefcace.sources.synthetic)", ha="center", fontsize=7, color="0.4")
    fig.tight_layout()
    return fig


def _counterfactual(base: FaceSample, target: str) -> tuple[FaceSample, FaceSample]:
    off = FaceSample(base.labels.copy(), dict(base.latents))
    on = FaceSample(base.labels.copy(), dict(base.latents))
    if target == "gender":
        off.labels["gender"] = GENDERS[0]
        on.labels["gender"] = GENDERS[1]
    elif target in _HAIR_ATTRIBUTE:
        for frame, colour in ((off.labels, "red"), (on.labels, HAIR_COLOURS[_HAIR_ATTRIBUTE[target]])):
            frame["hair_colour"] = colour
            for name, index in _HAIR_ATTRIBUTE.items():
                frame[name] = int(HAIR_COLOURS[index] == colour)
    else:
        off.labels[target] = 0
        on.labels[target] = 1
    return off, on


def _interleave(a: FaceSample, b: FaceSample) -> FaceSample:
    labels = pd.concat([a.labels, b.labels], ignore_index=True)
    n = len(a)
    order = np.ravel(np.column_stack([np.arange(n), np.arange(n) + n]))
    latents = {k: np.concatenate([a.latents[k], b.latents[k]])[order] for k in a.latents}
    return FaceSample(labels.iloc[order].reset_index(drop=True), latents)
