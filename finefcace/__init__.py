"""finefcace — FineFACE (Manzoor & Rattani): fair facial attribute classification
leveraging fine-grained features. The library behind the course in ``book/``."""

__version__ = "0.1.0"

# Model and attention API (paper §3.1–§3.3). Light imports only: torch/torchvision, no plotting.
from finefcace.attention import (
    attention_maps,
    attention_regions,
    baseline_class_activation_maps,
    boxes_from_maps,
    class_activation_maps,
    crop_and_resize,
    overall_attention_map,
    overall_region,
)
from finefcace.backbones import supported_backbones
from finefcace.model import Baseline, FineFACE, FineFACEOutput
from finefcace.predict import fused_logits, predict_loader
from finefcace.presets import PRESETS, get_preset

__all__ = [
    "PRESETS",
    "Baseline",
    "FineFACE",
    "FineFACEOutput",
    "attention_maps",
    "attention_regions",
    "baseline_class_activation_maps",
    "boxes_from_maps",
    "class_activation_maps",
    "crop_and_resize",
    "fused_logits",
    "get_preset",
    "overall_attention_map",
    "overall_region",
    "predict_loader",
    "supported_backbones",
]
