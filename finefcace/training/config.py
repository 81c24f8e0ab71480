"""The training configuration: one typed dataclass, built from a dict, a YAML file or
``--set key=value`` pairs, checked before anything trains.

Introduced in ``notebooks/04_training.ipynb`` (its ``parameters`` cell uses the same keys).
Hyper-parameters that the paper or the published code fix (learning rates, λ, batch size,
input size, pooling, ...) are **not** retyped here: they come from
:mod:`finefcace.presets` (one source of truth). A config only names the preset and,
optionally, overrides some of its values — either through the few top-level shortcuts
(``backbone``, ``input_size``, ``batch_size``, ``experts``, ``pooling``, ``region_draw``,
``fusion_*``; ``None`` means "take the preset's value") or through ``overrides:``
(any other preset key, e.g. ``head_lr`` or ``concat_loss_weight``).

Every mistake fails here, before a single image is read: an unknown key names the close
matches, a wrong type names the expected type and shows how to write it.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import json
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from finefcace import presets
from finefcace.attention import REGION_SOURCES
from finefcace.errors import UserError
from finefcace.model import ACTIVATIONS, HEADS, MIN_INPUT_SIZE, POOLINGS
from finefcace.predict import COMBINES, VIEWS
from finefcace.mitigation import METHODS, check_options
from finefcace.training.typecheck import check_value, type_message

__all__ = [
    "ConfigError",
    "TrainConfig",
    "load_config",
    "parse_assignment",
    "profile_values",
    "IDENTITY_IGNORED_KEYS",
]


class ConfigError(UserError):
    """A configuration key is unknown, mistyped or inconsistent; the message names the fix."""


#: A range a number must lie in: (test, the range in words).
Range = tuple[Callable[[Any], bool], str]
_POSITIVE: Range = (lambda v: v > 0, "> 0")
_NON_NEGATIVE: Range = (lambda v: v >= 0, ">= 0")
_FRACTION: Range = (lambda v: 0 <= v <= 1, "in [0, 1]")
_BELOW_ONE: Range = (lambda v: 0 <= v < 1, "in [0, 1)")
_ABOVE_ZERO_TO_ONE: Range = (lambda v: 0 < v <= 1, "in (0, 1]")

#: The type of every preset key and the range its value must lie in (None: any value of the
#: type), checked on the values in force (the preset's, the top-level shortcuts and
#: ``overrides``) when a config is made. Names and choices come from the modules that use them.
PRESET_RULES: dict[str, tuple[Any, Range | None]] = {
    "backbone": (str, None),                      # a supported torchvision name (checked below)
    "experts": (list[int] | None, None),          # stages of that backbone (checked below)
    "activation": (Literal[ACTIVATIONS], None),
    "head": (Literal[HEADS], None),
    "pooling": (Literal[POOLINGS], None),
    "descriptor_dim": (int, (lambda v: v >= 4 and v % 2 == 0, "an even number >= 4")),
    "descriptor_bn_momentum": (float, _ABOVE_ZERO_TO_ONE),
    "threshold": (float, _FRACTION),
    "pad": (float, (lambda v: 0 <= v < 0.5, "in [0, 0.5)")),
    "concat_loss_weight": (float, _NON_NEGATIVE),
    "region_draw": (Literal["batch", "sample"], None),
    "steps_forward": (Literal["expert_only", "all_heads"], None),
    "optimizer": (Literal["sgd"], None),
    "head_lr": (float, _POSITIVE),
    "backbone_lr": (float, _NON_NEGATIVE),        # 0 keeps the backbone as it is
    "momentum": (float, _BELOW_ONE),
    "weight_decay": (float, _NON_NEGATIVE),
    "batch_size": (int, (lambda v: v >= 2, "at least 2 (BatchNorm cannot train on one image)")),
    "input_size": (int, (lambda v: v >= MIN_INPUT_SIZE, f"at least {MIN_INPUT_SIZE} (the smallest input the "
                                                         "backbones' stages and the attention regions work at)")),
    "lr_schedule": (Literal["cosine"], None),
    "checkpoint_selection": (Literal["val"], None),
    "fusion_views": (list[Literal[VIEWS]], (lambda v: len(v) > 0, f"a non-empty list of {', '.join(VIEWS)}")),
    "fusion_heads": (Literal["all", "concat", "experts"] | int, None),
    "fusion_combine": (Literal[COMBINES], None),
}

# Preset keys that also have a top-level shortcut in TrainConfig (None there = preset value).
_SHORTCUT_KEYS: tuple[str, ...] = (
    "backbone",
    "experts",
    "pooling",
    "input_size",
    "batch_size",
    "region_draw",
    "fusion_views",
    "fusion_heads",
    "fusion_combine",
)

#: Keys that do not change what a run computes (where it writes, how it shows progress,
#: how it recovers): two configs that differ only in these describe the same run.
IDENTITY_IGNORED_KEYS: frozenset[str] = frozenset(
    {
        "run_dir",
        "progress",
        "workers",
        "device",
        "resume",
        "overwrite",
        "checkpoint_every",
        "stop_after_batches",
        "dist_backend",
        "save_predictions",
        "image_cache",
    }
)


@dataclass(frozen=True)
class TrainConfig:
    """Every key of a training run (FineFACE or baseline). Book: ``notebooks/04_training.ipynb``.

    Checked once, when it is made (types, then the cross-key rules of :meth:`validate`), and
    never changed afterwards (frozen): the same object is passed from the notebook or the
    command line through :func:`~finefcace.training.trainer.train_or_load` to the trainer,
    typed all the way. Build it with :meth:`from_dict` / :func:`load_config` (which also name
    unknown keys), change it with :meth:`replace`, and call :meth:`resolved` for the preset
    values in force.
    """

    # --- what to train: FineFACE, the baseline, or a bias-mitigation method (finefcace.mitigation)
    method: Literal[METHODS] = "finefcace"  # type: ignore[valid-type]
    method_options: dict[str, Any] = field(default_factory=dict)  # a mitigation method's options (defaults in finefcace.mitigation)
    # FineFACE's regions from the CAMs ("cam"), or a control: "placebo" (same-size boxes at random
    # positions) or "none" (every step on the raw image, the raw view fused): finefcace.attention.REGION_SOURCES
    regions: Literal[REGION_SOURCES] = "cam"  # type: ignore[valid-type]
    preset: str = "paper"
    overrides: dict[str, Any] = field(default_factory=dict)
    # --- data (one table format for every dataset: finefcace.sources.table)
    table: str | None = None          # CSV dataset table (path, split, targets, protected)
    root: str | None = None           # image folder the table's `path` is relative to (default: the table's folder)
    synthetic: dict[str, Any] | None = None  # generate_synthetic(root, **synthetic) when the table is absent
    target: str = "gender"
    protected: list[str] | None = None  # columns copied into predictions (None: evaluation.copied_columns)
    image_cache: str | None = None    # folder of the images decoded once (None: <table folder>/image_cache)
    # --- model shortcuts (None = the preset's value)
    backbone: str | None = None
    weights: str | None = None        # None (random init), a torchvision weights name ("IMAGENET1K_V1", "DEFAULT") or a local state-dict file
    experts: list[int] | None = None
    pooling: str | None = None
    input_size: int | None = None
    batch_size: int | None = None
    region_draw: Literal["batch", "sample"] | None = None
    fusion_views: list[str] | None = None
    fusion_heads: str | int | None = None
    fusion_combine: Literal["logits", "probabilities"] | None = None
    # --- schedule and model selection (paper §4.2; book/decisions.md)
    epochs: int = 10
    patience: int | None = 3          # epochs without improvement on val before stopping (None: never stop early)
    monitor: Literal["val_accuracy", "val_loss"] = "val_accuracy"
    min_delta: float = 0.0
    # --- reproducibility and speed
    seed: int = 0
    deterministic: bool = False
    amp: bool | None = None           # bf16 autocast; None = on for CUDA, off for CPU
    channels_last: bool = False
    compile: bool = False
    workers: int = 0
    device: str = "auto"              # "auto", "cpu", "cuda", "cuda:1", ...
    sync_batchnorm: bool = False      # multi-GPU only (CUDA)
    dist_backend: str = "auto"        # "auto" = nccl on CUDA, gloo on CPU
    # --- run directory, checkpoints, bounds for smoke tests
    run_dir: str = "runs/default"
    resume: bool = True               # continue from run_dir/last.pt when it belongs to this config
    overwrite: bool = False           # allow reusing a run_dir that holds a different config
    checkpoint_every: int | None = None     # also write last.pt every this many batches
    max_batches: int | None = None          # training batches per epoch (smoke tests)
    max_eval_batches: int | None = None     # evaluation batches per split (smoke tests)
    stop_after_batches: int | None = None   # save last.pt and stop after this many batches in total
    progress: bool = True
    save_predictions: bool = True

    # ------------------------------------------------------------------ building
    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> "TrainConfig":
        """Build and check a config from a plain dict (YAML/JSON loaded). Unknown keys and
        wrong types raise :class:`ConfigError` naming the key and the fix."""
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = [k for k in values if k not in known]
        if unknown:
            raise ConfigError(_unknown_key_message(unknown[0], known))
        return cls(**values)

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for item in dataclasses.fields(self):
            object.__setattr__(self, item.name, _check_type(item.name, getattr(self, item.name), hints[item.name]))
        self.validate()

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-ready primitives (what ``config.json`` stores)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def replace(self, **changes: Any) -> "TrainConfig":
        """A checked copy with some keys changed."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Cross-key checks (types were checked just before, when the config was made)."""
        if self.preset not in presets.PRESETS:
            raise ConfigError(
                f"config key 'preset' is {self.preset!r}; choose one of {sorted(presets.PRESETS)}"
            )
        preset_keys = set(presets.get_preset(self.preset))
        for key in self.overrides:
            if key not in preset_keys:
                raise ConfigError(
                    "unknown key in 'overrides': "
                    + _unknown_key_message(key, preset_keys, where="preset")
                )
            if key in _SHORTCUT_KEYS and getattr(self, key) is not None:
                raise ConfigError(
                    f"'{key}' is set both at the top level and in 'overrides'; keep one of them"
                )
        for key in ("epochs",):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key '{key}' must be >= 1, got {getattr(self, key)}")
        for key in ("patience", "checkpoint_every", "max_batches", "max_eval_batches",
                    "stop_after_batches", "input_size", "batch_size"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ConfigError(f"config key '{key}' must be >= 1 or null, got {value}")
        if self.workers < 0:
            raise ConfigError(f"config key 'workers' must be >= 0, got {self.workers}")
        if not (math.isfinite(self.min_delta) and self.min_delta >= 0):
            raise ConfigError(f"config key 'min_delta' must be a finite number >= 0, got {self.min_delta}")
        if self.seed < 0:
            raise ConfigError(f"config key 'seed' must be >= 0, got {self.seed}")
        if self.regions != "cam" and self.method != "finefcace":
            raise ConfigError(f"config key 'regions' is {self.regions!r}, a control of FineFACE's attention regions; "
                              f"method {self.method!r} has none (leave regions at 'cam')")
        if self.regions == "none" and self._fusion_views_set() and "oval" in self._fusion_views_set():
            raise ConfigError("config key 'regions' is 'none' (no attention regions are trained on), so the fused "
                              "inference cannot use the 'oval' view: set fusion_views to [raw] or leave it unset")
        try:
            check_options(self.method, self.method_options)
        except ValueError as error:
            raise ConfigError(f"config key 'method_options': {error}") from error
        self._check_preset_values()
        resolved = self.resolved()
        _check_model_keys(resolved["backbone"], resolved["experts"], self.weights)
        _check_device(self.device)
        if self.synthetic is not None:
            _check_synthetic(self.synthetic)

    def _check_preset_values(self) -> None:
        """Every preset value in force against :data:`PRESET_RULES`; ``overrides`` are converted
        in place where YAML left a number as text (``1e-3``)."""
        converted = dict(self.overrides)
        for key, value in self.resolved().items():
            if key not in PRESET_RULES:
                continue
            annotation, allowed = PRESET_RULES[key]
            if key in self.overrides:
                label, where, example_key = f"'overrides.{key}'", "the config file's overrides", key
            elif key in _SHORTCUT_KEYS and getattr(self, key) is not None:
                label, where, example_key = f"config key {key!r}", "the config file", key
            else:
                label, where, example_key = f"preset {self.preset!r} key {key!r}", "overrides", key
            fits, value = check_value(value, annotation)
            if not fits:
                raise ConfigError(type_message(label, example_key, value, annotation, where))
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{label} must be a finite number, got {value}")
            if allowed is not None and not allowed[0](value):
                raise ConfigError(f"{label} must be {allowed[1]}, got {value!r}")
            if key in self.overrides:
                converted[key] = value
        object.__setattr__(self, "overrides", converted)

    # ------------------------------------------------------------------ presets
    def resolved(self) -> dict[str, Any]:
        """The preset's values with this config's shortcuts and ``overrides`` applied:
        the hyper-parameters actually in force (stored in ``config.json`` as ``resolved``)."""
        values = presets.get_preset(self.preset)
        for key in _SHORTCUT_KEYS:
            if getattr(self, key) is not None:
                values[key] = getattr(self, key)
        values.update(self.overrides)
        if self.regions == "none" and not self._fusion_views_set():
            values["fusion_views"] = ["raw"]  # no region was trained on: the raw view's heads are fused
        if values.get("fusion_views") is not None:
            values["fusion_views"] = list(values["fusion_views"])
        options = check_options(self.method, self.method_options)
        if options:  # a mitigation method: its options in force (defaults included)
            values["method_options"] = options
        return values

    def _fusion_views_set(self) -> list[str] | None:
        """The fused views this config names itself (top level or ``overrides``), None when the preset's."""
        return self.fusion_views if self.fusion_views is not None else self.overrides.get("fusion_views")

    def identity(self) -> dict[str, Any]:
        """What decides whether two runs are the same run (used by train-or-load and resume)."""
        values = {k: v for k, v in self.to_dict().items() if k not in IDENTITY_IGNORED_KEYS}
        if not values["method_options"]:  # runs made before the key existed keep their identity
            del values["method_options"]
        if values["regions"] == "cam":  # likewise: FineFACE's own regions, as before the controls existed
            del values["regions"]
        values["resolved"] = json.loads(json.dumps(self.resolved()))
        return values


def _check_model_keys(backbone: str, experts: list[int] | None, weights: str | None) -> None:
    """The backbone is a supported one, the experts are among its stages, a weights name is one
    torchvision has for it."""
    from finefcace import backbones

    try:
        backbones.check_backbone_name(backbone)
    except ValueError as error:
        raise ConfigError(f"config key 'backbone': {error}") from None
    if experts is not None:
        from finefcace.model import _resolve_experts

        try:
            _resolve_experts(experts, _stage_count(backbone))
        except ValueError as error:
            raise ConfigError(f"config key 'experts': {error}") from None
    if weights is None:
        return
    if backbones._is_path_like(weights):
        return  # a local file: whether it exists is checked when a run starts (the trainer's check_run)
    try:
        backbones.resolve_weights_name(backbone, weights)
    except ValueError as error:
        raise ConfigError(f"config key 'weights': {error}") from None


@functools.lru_cache(maxsize=None)
def _stage_count(backbone: str) -> int:
    from finefcace.backbones import cut_into_stages, load_torchvision_backbone

    return len(cut_into_stages(load_torchvision_backbone(backbone)))


def _check_device(device: str) -> None:
    """A device string torch understands (whether it is present is checked when the run starts)."""
    if device == "auto":
        return
    import torch

    try:
        torch.device(device)
    except (RuntimeError, ValueError) as error:
        raise ConfigError(f"config key 'device' is {device!r}, which torch does not know ({error}); use auto, cpu, "
                          "cuda or cuda:<index>") from None


def _check_synthetic(options: dict[str, Any]) -> None:
    """The ``synthetic`` options: the arguments and bias knobs of ``generate_synthetic``."""
    from finefcace.sources import synthetic

    arguments = set(inspect.signature(synthetic.generate_synthetic).parameters) - {"out_dir", "bias_knobs"}
    knobs = {f.name for f in dataclasses.fields(synthetic.SyntheticBias)}
    unknown = sorted(set(options) - arguments - knobs)
    if unknown:
        raise ConfigError("config key 'synthetic': "
                          + _unknown_key_message(unknown[0], arguments | knobs, where="synthetic option"))
    missing = [k for k in ("n_train", "n_val", "n_test") if k not in options]
    if missing:
        raise ConfigError(f"config key 'synthetic' lacks {missing} (e.g. synthetic: {{n_train: 400, n_val: 100, "
                          "n_test: 200})")
    try:
        synthetic.check_generation(n_train=options["n_train"], n_val=options["n_val"], n_test=options["n_test"],
                                   size=options.get("size", synthetic.MIN_SIZE))
        synthetic.resolve_bias(options.get("bias"), **{k: v for k, v in options.items() if k in knobs})
    except UserError as error:
        raise ConfigError(f"config key 'synthetic': {error}") from None


def load_config(
    source: str | Path | dict[str, Any] | TrainConfig | None = None,
    assignments: typing.Sequence[str] = (),
    **changes: Any,
) -> TrainConfig:
    """A checked :class:`TrainConfig` from a YAML/JSON file, a dict or a config, then
    ``--set``-style ``key=value`` assignments, then keyword changes. A config with nothing to
    change is returned as it is (it was checked when it was made).

    Book: ``notebooks/04_training.ipynb``; CLI: ``python -m finefcace train --config ...``.
    """
    if isinstance(source, TrainConfig) and not assignments and not changes:
        return source
    if source is None:
        values: dict[str, Any] = {}
    elif isinstance(source, TrainConfig):
        values = source.to_dict()
    elif isinstance(source, dict):
        values = dict(source)
    else:
        values = load_yaml_mapping(source)
    for assignment in assignments:
        key, value = parse_assignment(assignment)
        _assign(values, key, value)
    values.update(changes)
    return TrainConfig.from_dict(values)


def profile_values(path: str | Path) -> dict[str, Any]:
    """The training keys of a notebook *profile* (a papermill parameter file that also holds
    notebook-only keys such as ``dataset`` or ``n_bootstrap``): only the keys that are
    :class:`TrainConfig` fields are kept. ``python -m finefcace train --profile FILE``."""
    values = load_yaml_mapping(path)
    keys = {f.name for f in dataclasses.fields(TrainConfig)}
    return {k: v for k, v in values.items() if k in keys}


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML file holding one mapping; :class:`ConfigError` naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    import yaml

    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {error}") from error
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"config file {str(path)!r} must hold a mapping of keys to values, got {type(loaded).__name__}"
        )
    return loaded


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"key=value"`` -> (key, value), the value read as YAML (``3`` -> int, ``null`` -> None,
    ``[3, 4]`` -> list). Dotted keys (``overrides.head_lr=0.01``) reach into a mapping."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got {text!r} (e.g. --set epochs=3)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set expects key=value, got {text!r} (e.g. --set epochs=3)")
    import yaml

    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key, value


def _assign(values: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    target = values
    for part in parts[:-1]:
        existing = target.get(part)
        if existing is None:
            existing = target[part] = {}
        if not isinstance(existing, dict):
            raise ConfigError(f"cannot set {key!r}: {part!r} is not a mapping")
        target = existing
    target[parts[-1]] = value


# ---------------------------------------------------------------------- messages
def _unknown_key_message(key: str, known: typing.Iterable[str], where: str = "config") -> str:
    known = sorted(known)
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    message = f"unknown {where} key {key!r}"
    if close:
        message += f"; did you mean {' or '.join(repr(c) for c in close)}?"
    if where == "config":
        preset_keys = set(presets.get_preset("paper"))
        if key in preset_keys:
            message += (
                f"; {key!r} is a preset value: set it under 'overrides' "
                f"(YAML: overrides: {{{key}: ...}}; CLI: --set overrides.{key}=...)"
            )
    message += f" (valid keys: {', '.join(known)})"
    return message


def _check_type(key: str, value: Any, annotation: Any) -> Any:
    fits, converted = check_value(value, annotation)
    if not fits:
        raise ConfigError(type_message(f"config key {key!r}", key, value, annotation, "the config file"))
    return converted
