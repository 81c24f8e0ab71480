"""What the experts are made of and what they cost: stage, expert, parameter and FLOP tables.

Paper §3.1 (expert construction, eqs. 1-3) and §4.2 (the backbone's 5 stages); the FLOPs of
Algorithm 1 (§3.3) and of fused inference. Introduced in ``notebooks/02_experts.ipynb``,
with the preset keys on which the paper and its published code differ
(``book/decisions.md``). Shapes and FLOPs come from a copy of the model on PyTorch's meta
device: exact, and no arithmetic is run.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "backbone_comparison",
    "expert_table",
    "flop_table",
    "parameter_table",
    "preset_differences",
    "stage_table",
    "unsupported_backbone_reason",
]


def _meta_model(model: Any) -> Any:
    """A structural copy of ``model`` on PyTorch's meta device: shapes and FLOPs, no arithmetic."""
    import copy

    return copy.deepcopy(model).to("meta").eval()


def _count(parameters: Iterable[Any]) -> int:
    return int(sum(p.numel() for p in parameters))


def stage_table(model: Any, input_size: int) -> "pd.DataFrame":
    """The backbone's stages (paper §4.2): layers, output stride, channels, map size at
    ``input_size``, parameters, and which experts end there. Book: ``notebooks/02_experts.ipynb``."""
    import pandas as pd

    from finefcace.backbones import stage_map_sizes

    rows = []
    sizes = stage_map_sizes(list(model.stages), input_size)  # exact: ConvNeXt floors, ResNet/Swin pad
    for index, stage in enumerate(model.stages, start=1):
        stride, channels = model.stage_strides[index - 1], model.stage_channels[index - 1]
        height, width = sizes[index - 1]
        ends = [f"e_{n + 1}" for n, m in enumerate(model.expert_stages) if m == index]
        rows.append({"stage": index, "layers": ", ".join(name for name, _ in stage.named_children()),
                     "stride": stride, "channels": channels, "map": f"{height}x{width}",
                     "parameters": _count(stage.parameters()), "expert ends here": ", ".join(ends) or "-"})
    return pd.DataFrame(rows).set_index("stage")


def expert_table(model: Any, input_size: int) -> "pd.DataFrame":
    """Each expert e_n (paper §3.1, eqs. 1-3): the stages it covers, the shapes of x_n,
    x''_n and v_n for one ``input_size``² image, and the parameters of F_n and f_n.
    Shapes come from one forward pass on the meta device. Book: ``notebooks/02_experts.ipynb``."""
    import pandas as pd
    import torch

    meta = _meta_model(model)
    with torch.no_grad():
        x = torch.zeros(1, 3, input_size, input_size, device="meta")
        features = meta.backbone_features(x)
        heads = [meta.expert_head(n, f) for n, f in enumerate(features)]
    rows = []
    for n, (feature, (logits, maps, descriptor)) in enumerate(zip(features, heads)):
        rows.append({
            "expert": f"e_{n + 1}", "stages": f"1..{model.expert_stages[n]}",
            "x_n": "x".join(map(str, feature.shape[1:])), "x''_n": "x".join(map(str, maps.shape[1:])),
            "v_n": int(descriptor.shape[1]), "p_n": int(logits.shape[1]),
            "F_n parameters": _count(model.descriptor_blocks[n].parameters()) + _count(model.poolings[n].parameters()),
            "f_n parameters": _count(model.classifiers[n].parameters()),
        })
    rows.append({"expert": "concat", "stages": "-", "x_n": "-", "x''_n": "-",
                 "v_n": int(sum(h[2].shape[1] for h in heads)), "p_n": model.num_classes,
                 "F_n parameters": 0, "f_n parameters": _count(model.concat_classifier.parameters())})
    return pd.DataFrame(rows).set_index("expert")


def parameter_table(model: Any, baseline: Any | None = None) -> "pd.DataFrame":
    """Parameters of FineFACE by part (backbone stages, descriptor blocks F_n, classifiers
    f_n, concatenation classifier f_oval) beside the baseline's. Book: ``notebooks/02_experts.ipynb``."""
    import pandas as pd

    parts = {
        "backbone stages (shared)": _count(model.backbone_parameters()),
        "descriptor blocks F_n": _count(model.descriptor_blocks.parameters()) + _count(model.poolings.parameters()),
        "expert classifiers f_n": _count(model.classifiers.parameters()),
        "concatenation classifier f_oval": _count(model.concat_classifier.parameters()),
    }
    parts["FineFACE total"] = _count(model.parameters())
    frame = pd.DataFrame({"parameters": parts})
    if baseline is not None:
        frame.loc["baseline total (backbone + GAP + Linear)", "parameters"] = _count(baseline.parameters())
    frame["parameters"] = frame["parameters"].astype(int)
    frame["millions"] = (frame["parameters"] / 1e6).round(2)
    return frame


def flop_table(model: Any, input_size: int, baseline: Any | None = None) -> "pd.DataFrame":
    """Forward-pass FLOPs per image (``torch.utils.flop_counter.FlopCounterMode``, on the meta
    device: exact counts of the convolutions and matrix products, no arithmetic run).

    Rows: the baseline's forward; FineFACE's full forward (N experts + concatenation); each
    expert alone (``forward_expert``, Algorithm 1 steps 2..N); one training iteration's
    forwards (steps 1, 2..N, N+1, N+2 of Algorithm 1; backward passes cost about twice as much
    again); fused inference (raw image and A_oval, paper §3.3). Book: ``notebooks/02_experts.ipynb``.
    """
    import pandas as pd
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    def flops(module: Any, call) -> int:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            call(module)
        return int(counter.get_total_flops())

    x = torch.zeros(1, 3, input_size, input_size, device="meta")
    meta = _meta_model(model)
    full = flops(meta, lambda m: m(x))
    experts = [flops(meta, lambda m, n=n: m.forward_expert(x, n)) for n in range(model.num_experts)]
    rows = {}
    if baseline is not None:
        rows["baseline forward"] = flops(_meta_model(baseline), lambda m: m(x))
    rows["FineFACE forward (N experts + concat)"] = full
    for n, value in enumerate(experts):
        rows[f"expert e_{n + 1} alone"] = value
    # Algorithm 1: step 1 runs the whole model (the deepest expert's loss; the CAMs need every
    # head), steps 2..N one shallower expert each, steps N+1 and N+2 the whole model again.
    rows["training iteration, forwards (N+2 steps)"] = full + sum(experts[:-1]) + 2 * full
    rows["fused inference (raw + A_oval)"] = 2 * full
    frame = pd.DataFrame({"GFLOPs": {k: round(v / 1e9, 3) for k, v in rows.items()}})
    reference = rows.get("baseline forward", full)
    frame["x baseline forward" if baseline is not None else "x FineFACE forward"] = \
        [round(v / reference, 2) for v in rows.values()]
    return frame


def backbone_comparison(backbones: Iterable[str] = ("resnet50", "convnext_tiny", "swin_t"),
                        sizes: Iterable[int] = (224, 448), num_classes: int = 2) -> "pd.DataFrame":
    """FineFACE on several torchvision backbones side by side (the paper's future work, §6:
    "other backbone architectures such as Transformer"): the stages its default experts end
    at, their maps x_n at each input size, the parameters, the forward FLOPs per image of the
    baseline and of FineFACE at the largest size, and the forwards of one training iteration
    (Algorithm 1's N + 2 steps) over the baseline's forward. Built on the meta device (no
    weights, no arithmetic). Book: ``notebooks/02_experts.ipynb``."""
    import pandas as pd
    import torch

    from finefcace.model import Baseline, FineFACE

    sizes = list(sizes)
    rows = []
    for name in backbones:
        with torch.device("meta"):
            model, baseline = FineFACE(name, num_classes), Baseline(name, num_classes)
        row: dict[str, Any] = {"backbone": name, "experts end at stages": ", ".join(map(str, model.expert_stages))}
        for size in sizes:
            maps = expert_table(model, size)["x_n"].drop("concat")
            row[f"maps at {size} px"] = ", ".join(str(m).split("x", 1)[1] for m in maps)
        row["params (M)"] = round(_count(model.parameters()) / 1e6, 1)
        flops = flop_table(model, sizes[-1], baseline)["GFLOPs"]
        row[f"GFLOPs baseline ({sizes[-1]} px)"] = round(flops["baseline forward"], 1)
        row[f"GFLOPs FineFACE ({sizes[-1]} px)"] = round(flops["FineFACE forward (N experts + concat)"], 1)
        row["iteration ÷ baseline"] = round(
            flops["training iteration, forwards (N+2 steps)"] / flops["baseline forward"], 2)
        rows.append(row)
    return pd.DataFrame(rows).set_index("backbone")


def unsupported_backbone_reason(name: str = "vit_b_16") -> str:
    """Why a backbone cannot carry FineFACE's experts: the message building it gives
    (a plain ViT has one token grid, hence no shallow expert). Book: ``notebooks/02_experts.ipynb``."""
    import torch

    from finefcace.model import FineFACE

    try:
        with torch.device("meta"):
            FineFACE(name, 2)
    except ValueError as error:
        return str(error)
    return f"{name} is supported"


def preset_differences(first: str = "paper", second: str = "official_code") -> "pd.DataFrame":
    """The preset keys whose values differ between two presets (``finefcace.presets``).
    Book: ``notebooks/02_experts.ipynb``; the reasons are in ``book/decisions.md``."""
    import pandas as pd

    from finefcace.presets import get_preset

    a, b = get_preset(first), get_preset(second)
    keys = [k for k in a if a[k] != b.get(k)] + [k for k in b if k not in a]
    return pd.DataFrame({first: [a.get(k) for k in keys], second: [b.get(k) for k in keys]},
                        index=pd.Index(keys, name="preset key"))
