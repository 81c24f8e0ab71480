"""Multi-step mutual learning: what happens to one mini-batch (paper §3.3, Algorithm 1).

Introduced in ``notebooks/04_training.ipynb`` (chapter 4 runs one iteration step by step);
the method is written out in ``book/method.md`` §8, and the paper-vs-code switches read
here (λ, which heads run in steps 2..N, one region draw per batch or per sample) are
explained in ``book/decisions.md`` and set in :mod:`finefcace.presets`. Whole runs — data,
epochs, checkpoints — are :mod:`finefcace.training.trainer`'s; the benchmarks call these functions
on their own.

Algorithm 1, for a batch (images, labels) and N experts — N+2 optimizer steps, the gradients
reset to ``None`` before each, so each step updates exactly the parameters its loss reaches:

1. the deepest expert e_N on the raw batch, ``CE(p_N)``; from that same forward (detached,
   the shallower heads under ``no_grad``, before the step changes any weight) every
   expert's CAM, then A_1..A_N and A_oval — computed once per batch;
2. for n = N−1 … 1: expert e_n alone on an input drawn uniformly from
   {raw} ∪ {A_m : m ≠ n}, ``CE(p_n)``;
3. step N+1: all experts and the concatenation on A_oval, ``Σ_n CE(p_n) + λ·CE(p_oval)``;
4. step N+2: the concatenation on the raw batch, ``λ·CE(p_oval)`` — the backbone and every
   F_n for v_n, then f_oval; the expert classifiers f_n do not run.

Two controls change only where the inputs of steps 2..N+1 come from (``regions``;
:data:`finefcace.attention.REGION_SOURCES`, ``book/decisions.md``): ``"placebo"`` crops boxes of
the CAM boxes' sizes at random positions; ``"none"`` trains every one of the N+2 steps on the raw
batch (no CAM is computed) — the same experts, losses and number of updates, no attention.

Every training-mode pass through a BatchNorm moves its running statistics, which evaluation
uses. With ``steps_forward="expert_only"`` (paper) a BatchNorm's statistics move in a step
exactly when the step trains it: the shallower heads that step 1 runs for the CAMs, and the
CAM itself, record no statistics (:func:`finefcace.model.batchnorm_statistics_unchanged`);
``"all_heads"`` (published code) runs the whole network in every step, so every BatchNorm
records every step (the CAM still records nothing). ``book/decisions.md`` explains both.

:func:`baseline_iteration` is the baseline's one forward, one loss, one step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from finefcace import attention
from finefcace.model import Baseline, FineFACE, FineFACEOutput, batchnorm_statistics_unchanged
from finefcace.precision import autocast
from finefcace.presets import REGION_PAD, REGION_THRESHOLD

__all__ = ["step_names", "finefcace_iteration", "baseline_iteration"]


def _classification_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """L_cls of Algorithm 1: cross-entropy, computed in float32 (also under bf16 autocast)."""
    return F.cross_entropy(logits.float(), labels)


def step_names(num_experts: int) -> list[str]:
    """Names of the N+2 steps of one FineFACE iteration, in the order they run:
    ``expert_N, ..., expert_1`` (1-based as in the paper), ``overall_region`` (step N+1),
    ``concat_raw`` (step N+2). They key the losses and the history columns."""
    return [f"expert_{n}" for n in range(num_experts, 0, -1)] + ["overall_region", "concat_raw"]


def _draw_inputs(
    candidates: Sequence[Tensor],
    names: Sequence[str],
    region_draw: str,
    generator: torch.Generator | None,
) -> tuple[Tensor, str, list[int] | int]:
    """Pick the step-2..N input uniformly from ``candidates``: one draw for the whole batch
    (published code) or one per sample. Draws use a CPU generator: no device sync."""
    if region_draw == "batch":
        choice = int(torch.randint(len(candidates), (1,), generator=generator).item())
        return candidates[choice], names[choice], choice
    if region_draw != "sample":
        raise ValueError(f"region_draw must be 'batch' or 'sample', got {region_draw!r}")
    batch = candidates[0].shape[0]
    choices = torch.randint(len(candidates), (batch,), generator=generator)
    mixed = candidates[0].clone()
    device_choices = choices.to(mixed.device)
    for index in range(1, len(candidates)):
        mask = (device_choices == index)[:, None, None, None]
        mixed = torch.where(mask, candidates[index], mixed)
    return mixed, "per_sample", choices.tolist()


def finefcace_iteration(
    model: FineFACE,
    optimizer: torch.optim.Optimizer,
    images: Tensor,
    labels: Tensor,
    *,
    concat_loss_weight: float = 1.0,
    threshold: float = REGION_THRESHOLD,
    pad: float = REGION_PAD,
    region_draw: str = "batch",
    steps_forward: str = "expert_only",
    regions: str = "cam",
    generator: torch.Generator | None = None,
    amp_dtype: torch.dtype | None = None,
    after_backward: Callable[[], Any] | None = None,
    on_step: Callable[[dict[str, Any]], Any] | None = None,
    stats: dict[str, Any] | None = None,
) -> dict[str, Tensor]:
    """One FineFACE training iteration: the N+2 optimizer steps of Algorithm 1 on one batch.

    Paper §3.3 and supplementary Algorithm 1; book ``notebooks/04_training.ipynb``.

    Args:
        model: a :class:`~finefcace.model.FineFACE` in train mode.
        optimizer: steps over the model's parameters (e.g. :func:`finefcace.training.recipe.build_optimizer`).
        images, labels: the raw batch (on the model's device) and its class indices.
        concat_loss_weight: λ (preset ``paper`` 1, ``official_code`` 2).
        threshold, pad: attention-region threshold t and box padding (paper §3.2).
        region_draw: ``"batch"`` (one draw of the step-n input per batch) or ``"sample"``.
        steps_forward: ``"expert_only"`` (paper: each step forwards only what its loss needs —
            step n only e_n, step N+2 no expert classifier — and step 1 runs the shallower
            heads for the CAMs under ``no_grad``, recording no BatchNorm statistics) or
            ``"all_heads"`` (published code: every step forwards the whole model and uses the
            head it trains).
        regions: ``"cam"`` (FineFACE: A_1..A_N, A_oval from the CAMs), ``"placebo"`` (boxes of
            the same sizes at random positions) or ``"none"`` (every step on the raw batch; no
            CAM computed, no draw made).
        generator: CPU generator for the region draws and placebo positions (the trainer's,
            checkpointed).
        amp_dtype: autocast dtype (``torch.bfloat16``) or ``None``.
        after_backward: called after every backward, before the step (multi-process
            gradient averaging, :func:`finefcace.training.distributed.average_gradients`).
        on_step: called after every optimizer step with ``{"step", "name", "input_name",
            "input", "loss"}`` (instrumentation, tests).
        stats: if given, receives ``"correct"`` (correct predictions of p_oval on the raw
            batch, from step N+2's forward, a tensor), ``"inputs"`` (the input name of each
            step) and ``"regions"`` (A_1..A_N) and ``"overall_region"`` (A_oval) — the raw batch
            itself with ``regions="none"``.

    Returns:
        ``{step name: detached loss}`` for the N+2 steps, in order (see :func:`step_names`).
        Losses stay on the device (no host synchronisation here).
    """
    if steps_forward not in ("expert_only", "all_heads"):
        raise ValueError(f"steps_forward must be 'expert_only' or 'all_heads', got {steps_forward!r}")
    attention.check_region_source(regions)
    use_regions = regions != "none"
    num_experts = model.num_experts
    names = step_names(num_experts)
    device = images.device
    losses: dict[str, Tensor] = {}
    inputs_seen: dict[str, str] = {}

    def finish_step(index: int, loss: Tensor, input_name: str, input_tensor: Tensor) -> None:
        loss.backward()
        if after_backward is not None:
            after_backward()
        optimizer.step()
        name = names[index]
        losses[name] = loss.detach()
        inputs_seen[name] = input_name
        if on_step is not None:
            on_step({"step": index + 1, "name": name, "input_name": input_name,
                     "input": input_tensor, "loss": losses[name]})

    # ---- step 1: the deepest expert on the raw batch; CAMs and regions from this forward
    optimizer.zero_grad(set_to_none=True)
    with autocast(device, amp_dtype):
        if steps_forward == "all_heads":
            full = model(images)
            deepest_logits = full.expert_logits[-1]
            cam_output = FineFACEOutput(
                expert_logits=[p.detach() for p in full.expert_logits],
                concat_logits=full.concat_logits.detach(),
                maps=[m.detach().float() for m in full.maps],
                descriptors=[v.detach() for v in full.descriptors],
            )
        else:
            features = model.backbone_features(images)  # x_1..x_N, stages 1..m_N
            deepest_logits, deepest_map, deepest_descriptor = model.expert_head(num_experts - 1, features[-1])
            cam_output = None
            if use_regions:
                # The shallower heads only feed the CAMs: no gradient, and (training-mode batch
                # statistics, as the deepest head) no BatchNorm statistics recorded.
                with torch.no_grad(), batchnorm_statistics_unchanged(model):
                    shallow = [model.expert_head(n, features[n].detach()) for n in range(num_experts - 1)]
                cam_output = FineFACEOutput(
                    expert_logits=[h[0].detach() for h in shallow] + [deepest_logits.detach()],
                    concat_logits=deepest_logits.detach(),  # unused by the CAMs; p_oval is not computed here
                    maps=[h[1].detach().float() for h in shallow] + [deepest_map.detach().float()],
                    descriptors=[h[2].detach() for h in shallow] + [deepest_descriptor.detach()],
                )
        loss = _classification_loss(deepest_logits, labels)
    if use_regions:
        # Before the step changes any weight: the CAMs use the classifiers that made p_n.
        with torch.no_grad():
            cams = attention.class_activation_maps(model, cam_output)
            regions, overall = attention.regions_from_cams(images, cams, threshold, pad, source=regions,
                                                           generator=generator)  # A_1..A_N, A_oval
            if images.dim() == 4 and images.is_contiguous(memory_format=torch.channels_last):
                regions = [r.contiguous(memory_format=torch.channels_last) for r in regions]
                overall = overall.contiguous(memory_format=torch.channels_last)
    else:  # the no-regions control: every step sees the raw batch
        regions, overall = [images] * num_experts, images
    del cam_output
    region_names = ([f"A_{m + 1}" for m in range(num_experts)] + ["A_oval"] if use_regions
                    else ["raw"] * (num_experts + 1))
    finish_step(0, loss, "raw", images)

    # ---- steps 2..N: expert n (deep to shallow) on raw or another expert's region
    for step, n in enumerate(range(num_experts - 2, -1, -1), start=1):
        if not use_regions:
            chosen, chosen_name = images, "raw"
        else:
            pool = [images] + [regions[m] for m in range(num_experts) if m != n]
            pool_names = ["raw"] + [region_names[m] for m in range(num_experts) if m != n]
            chosen, chosen_name, _ = _draw_inputs(pool, pool_names, region_draw, generator)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, amp_dtype):
            if steps_forward == "all_heads":
                logits = model(chosen).expert_logits[n]
            else:
                logits = model.forward_expert(chosen, n)[0]
            loss = _classification_loss(logits, labels)
        finish_step(step, loss, chosen_name, chosen)

    # ---- step N+1: every expert and the concatenation on A_oval (the raw batch without regions)
    optimizer.zero_grad(set_to_none=True)
    with autocast(device, amp_dtype):
        out = model(overall)
        loss = sum(_classification_loss(p, labels) for p in out.expert_logits)
        loss = loss + concat_loss_weight * _classification_loss(out.concat_logits, labels)
    finish_step(num_experts, loss, region_names[-1], overall)

    # ---- step N+2: the concatenation on the raw batch (v_1..v_N, then f_oval)
    optimizer.zero_grad(set_to_none=True)
    with autocast(device, amp_dtype):
        if steps_forward == "all_heads":
            concat_logits = model(images).concat_logits
        else:
            concat_logits = model.forward_concat(images)
        loss = concat_loss_weight * _classification_loss(concat_logits, labels)
    correct = (concat_logits.detach().argmax(dim=1) == labels).sum()
    finish_step(num_experts + 1, loss, "raw", images)

    if stats is not None:
        stats["correct"] = correct
        stats["inputs"] = inputs_seen
        stats["regions"] = regions
        stats["overall_region"] = overall
    return losses


def baseline_iteration(
    model: Baseline,
    optimizer: torch.optim.Optimizer,
    images: Tensor,
    labels: Tensor,
    *,
    amp_dtype: torch.dtype | None = None,
    after_backward: Callable[[], Any] | None = None,
    stats: dict[str, Any] | None = None,
    **_: Any,
) -> dict[str, Tensor]:
    """One baseline iteration: forward, ``CE``, backward, one step. Returns ``{"loss": ...}``.

    Book: ``notebooks/04_training.ipynb``. ``stats`` receives ``"correct"``.
    """
    optimizer.zero_grad(set_to_none=True)
    with autocast(images.device, amp_dtype):
        logits = model(images)
        loss = _classification_loss(logits, labels)
    loss.backward()
    if after_backward is not None:
        after_backward()
    optimizer.step()
    if stats is not None:
        stats["correct"] = (logits.detach().argmax(dim=1) == labels).sum()
    return {"loss": loss.detach()}
