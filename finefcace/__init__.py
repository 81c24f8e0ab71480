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

# Fairness metrics (paper §4.3). fairlearn, matplotlib and seaborn are imported inside
# the functions that need them, so `import finefcace` works on a GPU machine without the
# notebook tooling.
from finefcace.metrics import (
    aggregate_seeds,
    attribute_task_report,
    degree_of_bias,
    gender_task_report,
    group_rates,
    max_min_ratio,
)
from finefcace.mutual_learning import baseline_iteration, finefcace_iteration

# Data (finefcace.sources): one table format for every dataset, its Dataset and transforms.
from finefcace.sources.adapters import dataset_table
from finefcace.sources.dataset import FaceTableDataset, make_loader
from finefcace.sources.synthetic import SyntheticBias, generate_synthetic, render_synthetic
from finefcace.sources.table import CELEBA_ATTRIBUTES, classes_for, load_table, save_table
from finefcace.sources.transforms import test_transform, train_transform

# Training (finefcace.training: paper Algorithm 1 over whole runs) and the run directory it
# writes; `train`, which dispatches on config.method, stays in finefcace.training.trainer.
from finefcace.training.config import TrainConfig, load_config
from finefcace.training.evaluation import evaluate_run
from finefcace.training.run_directory import load_run
from finefcace.training.trainer import train_baseline, train_finefcace, train_or_load

__all__ = [
    "TrainConfig",
    "baseline_iteration",
    "evaluate_run",
    "finefcace_iteration",
    "load_config",
    "load_run",
    "train_baseline",
    "train_finefcace",
    "train_or_load",
    "CELEBA_ATTRIBUTES",
    "FaceTableDataset",
    "SyntheticBias",
    "aggregate_seeds",
    "attribute_task_report",
    "classes_for",
    "dataset_table",
    "degree_of_bias",
    "gender_task_report",
    "generate_synthetic",
    "group_rates",
    "load_table",
    "make_loader",
    "max_min_ratio",
    "render_synthetic",
    "save_table",
    "test_transform",
    "train_transform",
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
