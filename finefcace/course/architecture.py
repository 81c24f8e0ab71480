"""FineFACE's architecture as a diagram, drawn from the library's own names and numbers.

Three panels: the model (paper §3.1–3.2: experts cut from shallow-to-deep backbone stages,
each with its descriptor block F_n, pooling, classifier and class activation map, the
attention regions A_n and A_oval, the concatenation head), the N + 2 optimizer steps of one
training iteration (§3.3, supplementary Algorithm 1) and fused inference (§3.3, "Inference
Phase"). Every label that names a stage, a stride, a channel count, a step or a view is read
from a :class:`~finefcace.model.FineFACE` instance, :func:`finefcace.mutual_learning.step_names`
and the ``paper`` preset — so the picture cannot drift from the code.

Book: ``book/intro.md`` and ``book/method.md`` (the figure ``book/_static/finefcace_architecture.svg``,
written by ``scripts/architecture_diagram.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ArchitectureFacts", "architecture_facts", "architecture_figure", "step_descriptions"]


@dataclass(frozen=True)
class ArchitectureFacts:
    """What the diagram shows, read from the library: the backbone, its stages' strides and
    channels, the 1-based stages the experts end at, the N + 2 step names in the order they
    run, and the views fused at inference."""

    backbone: str
    input_size: int
    stage_strides: tuple[int, ...]
    stage_channels: tuple[int, ...]
    expert_stages: tuple[int, ...]
    descriptor_dim: int
    step_names: tuple[str, ...]
    fusion_views: tuple[str, ...]
    concat_loss_weight: float

    @property
    def num_experts(self) -> int:
        return len(self.expert_stages)


def architecture_facts(backbone: str = "resnet50", input_size: int = 448, preset: str = "paper") -> ArchitectureFacts:
    """The facts of :class:`ArchitectureFacts` for ``backbone`` built as ``preset`` builds it
    (by default the paper's: ResNet-50 at 448 px, three experts, C_v = 1024). No weights are
    loaded. Book: ``book/method.md``."""
    from finefcace.model import FineFACE
    from finefcace.mutual_learning import step_names
    from finefcace.presets import get_preset

    model = FineFACE.from_preset(preset, backbone, 2)
    settings = get_preset(preset)
    return ArchitectureFacts(
        backbone=backbone, input_size=input_size,
        stage_strides=tuple(model.stage_strides), stage_channels=tuple(model.stage_channels),
        expert_stages=tuple(model.expert_stages), descriptor_dim=int(model.config["descriptor_dim"]),
        step_names=tuple(step_names(model.num_experts)), fusion_views=tuple(settings["fusion_views"]),
        concat_loss_weight=float(settings["concat_loss_weight"]),
    )


def step_descriptions(facts: ArchitectureFacts) -> list[tuple[str, str]]:
    """(step name, what it does) for the N + 2 steps of one iteration, in the order they run
    (``finefcace.mutual_learning.finefcace_iteration``; paper Algorithm 1)."""
    n = facts.num_experts
    out = []
    for index, name in enumerate(facts.step_names, start=1):
        if name.startswith("expert_"):
            k = int(name.removeprefix("expert_"))
            if index == 1:
                what = f"raw batch through every stage; loss CE(p_{k}); then every CAM → A_1..A_{n}, A_oval"
            else:
                what = f"one draw from {{raw}} ∪ {{A_m : m ≠ {k}}} through e_{k} only; loss CE(p_{k})"
        elif name == "overall_region":
            what = f"A_oval through all experts; loss Σ_n CE(p_n) + λ·CE(p_oval), λ = {facts.concat_loss_weight:g}"
        else:
            what = f"raw batch; loss λ·CE(p_oval) on the concatenation [v_1..v_{n}]"
        out.append((f"step {index}: {name}", what))
    return out


def _box(ax: Any, x: float, y: float, w: float, h: float, text: str, colour: str, size: float = 8) -> None:
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.01,rounding_size=0.015", fc=colour,
                                ec="#333333", lw=0.8))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size)


def _arrow(ax: Any, start: tuple[float, float], end: tuple[float, float], colour: str = "#333333") -> None:
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="->", color=colour, lw=0.9))


def architecture_figure(facts: ArchitectureFacts) -> Any:
    """The diagram as a matplotlib figure (model; the N + 2 training steps; fused inference)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = facts.num_experts
    fig = plt.figure(figsize=(12, 7.4))
    model_ax = fig.add_axes((0.01, 0.36, 0.6, 0.58))
    steps_ax = fig.add_axes((0.63, 0.36, 0.36, 0.58))
    infer_ax = fig.add_axes((0.01, 0.0, 0.98, 0.3))
    for ax in (model_ax, steps_ax, infer_ax):
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.axis("off")

    # ---- the model: stages in a row, an expert hanging from each expert stage
    model_ax.set_title(f"FineFACE, {facts.backbone} at {facts.input_size} px: experts from shallow to deep stages "
                       f"(§3.1–3.2)", fontsize=9, loc="left")
    stages = len(facts.stage_strides)
    width = 0.9 / stages
    _box(model_ax, 0.0, 0.83, 0.08, 0.1, f"image x\n{facts.input_size}²", "#ffffff")
    for s in range(stages):
        x = 0.1 + s * width
        size = facts.input_size // facts.stage_strides[s]
        used = s + 1 <= facts.expert_stages[-1]
        _box(model_ax, x, 0.83, width * 0.86, 0.1,
             f"stage {s + 1}\nstride {facts.stage_strides[s]}, {size}²\n{facts.stage_channels[s]} ch",
             "#e8e8e8" if used else "#f8f8f8", 7)
        _arrow(model_ax, (x - 0.02 if s else 0.08, 0.88), (x, 0.88))
    expert_colours = ["#cfe2f3", "#d9ead3", "#fce5cd", "#ead1dc", "#fff2cc", "#d0e0e3"]
    for k, stage in enumerate(facts.expert_stages, start=1):
        colour = expert_colours[(k - 1) % len(expert_colours)]
        x = 0.1 + (stage - 1) * width
        top = 0.8
        _arrow(model_ax, (x + width * 0.43, 0.83), (x + width * 0.43, top - 0.02))
        _box(model_ax, x, top - 0.14, width * 0.86, 0.12,
             f"e_{k}: stages 1..{stage}\nF_{k}: 1×1, 3×3 conv\n→ x''_{k}, {facts.descriptor_dim} ch", colour, 7)
        _box(model_ax, x, top - 0.3, width * 0.86, 0.12, f"GMP → v_{k}\nclassifier → p_{k}", colour, 7)
        _arrow(model_ax, (x + width * 0.43, top - 0.14), (x + width * 0.43, top - 0.18))
        _box(model_ax, x, top - 0.46, width * 0.86, 0.12, f"CAM Ω_{k} of the\npredicted class\n→ region A_{k}",
             colour, 7)
        _arrow(model_ax, (x + width * 0.43, top - 0.3), (x + width * 0.43, top - 0.34))
    left = 0.1 + (facts.expert_stages[0] - 1) * width
    right = 0.1 + facts.expert_stages[-1] * width - width * 0.14
    _box(model_ax, left, 0.12, right - left, 0.09,
         f"concatenation [v_1..v_{n}] → classifier → p_oval", "#f4cccc", 8)
    _box(model_ax, left, 0.0, right - left, 0.09,
         f"A_oval: the normalised maps Ω_1..Ω_{n} summed,\nthen thresholded, boxed and cropped", "#f4cccc", 8)
    model_ax.text(0.02, 0.5, "each expert's region A_n\nis a training input for\nthe other experts, A_oval\n"
                  "for all of them\n(right: Algorithm 1)", fontsize=8, va="center", style="italic")

    # ---- Algorithm 1: the N + 2 steps
    steps_ax.set_title(f"One training iteration: N + 2 = {len(facts.step_names)} optimizer steps (Algorithm 1)",
                       fontsize=9, loc="left")
    rows = step_descriptions(facts)
    height = 0.9 / len(rows)
    for i, (name, what) in enumerate(rows):
        y = 0.92 - (i + 1) * height
        _box(steps_ax, 0.0, y + 0.01, 1.0, height - 0.02, "", "#f3f3f3")
        steps_ax.text(0.02, y + height * 0.62, name, fontsize=8, weight="bold", va="center")
        steps_ax.text(0.02, y + height * 0.3, _wrap(what, 62), fontsize=7, va="center")
        if i:
            _arrow(steps_ax, (0.5, y + height + 0.01), (0.5, y + height - 0.01))

    # ---- fused inference
    views = " and ".join("the raw image" if v == "raw" else "A_oval" for v in facts.fusion_views)
    heads = 2 * (n + 1) if len(facts.fusion_views) == 2 else n + 1
    infer_ax.set_title(f"Fused inference (§3.3): {views}, each through all {n} experts and the concatenation",
                       fontsize=9, loc="left")
    _box(infer_ax, 0.02, 0.45, 0.12, 0.3, "test image x", "#ffffff", 8)
    _box(infer_ax, 0.2, 0.6, 0.22, 0.3, f"x → p_1..p_{n}, p_oval\nand the CAMs Ω_1..Ω_{n}", "#e8e8e8", 8)
    _box(infer_ax, 0.2, 0.12, 0.22, 0.3, "A_oval(x), from the CAMs", "#f4cccc", 8)
    _box(infer_ax, 0.5, 0.12, 0.22, 0.3, f"A_oval → p_1..p_{n}, p_oval", "#e8e8e8", 8)
    _box(infer_ax, 0.78, 0.35, 0.2, 0.35, f"mean of the {heads}\nlogit vectors → ŷ", "#d9d2e9", 8)
    _arrow(infer_ax, (0.14, 0.6), (0.2, 0.75))
    _arrow(infer_ax, (0.31, 0.6), (0.31, 0.42))
    _arrow(infer_ax, (0.42, 0.27), (0.5, 0.27))
    _arrow(infer_ax, (0.42, 0.75), (0.78, 0.6))
    _arrow(infer_ax, (0.72, 0.27), (0.78, 0.45))
    return fig


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))
