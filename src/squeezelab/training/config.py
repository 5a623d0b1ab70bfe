"""The resolved configuration of one training run: a frozen dataclass, validated once.

Every field has a default; a run, a study file or a ``--set`` override lists only what
differs. ``validate()`` names the bad field and its allowed values.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, fields
from typing import Any

from ..errors import SqueezelabError

SCHEDULERS = ("none", "step", "plateau", "linear", "cosine", "onecycle")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BYPASSES = ("none", "simple", "complex")
# Model options of the SqueezeNet family; AlexNet takes only dropout.
MODEL_FIELDS = (
    "dropout",
    "batch_norm",
    "fire_delta",
    "bypass",
    "base_e",
    "incr_e",
    "freq",
    "pct3x3",
    "squeeze_ratio",
)


# Bounds that catch typos (epochs = 1e20) before they allocate or run for ever.
UPPER_BOUNDS = {
    "epochs": 100_000,
    "batch_size": 1 << 20,
    "image_size": 4096,
    "step_size": 100_000,
    "base_e": 1 << 16,
    "incr_e": 1 << 16,
    "freq": 1024,
    "warmup_epochs": 100_000,
    "plateau_patience": 100_000,
    "seed": 2**32 - 1,
    "split_seed": 2**32 - 1,
    "train_subset": 10**9,
}


class ConfigError(SqueezelabError, ValueError):
    """A configuration field is unknown or holds a bad value."""


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one run's result (not where it runs or writes)."""

    # model
    model: str = "squeezenet1_0"
    dropout: float = 0.5
    batch_norm: bool = False
    fire_delta: int = 0
    bypass: str = "none"
    base_e: int = 128
    incr_e: int = 128
    freq: int = 2
    pct3x3: float = 0.5
    squeeze_ratio: float = 0.125
    init: str | None = None  # None (scratch), "imagenet", or a .pth / run directory path
    # data
    data: str = "synthetic"
    image_size: int = 64
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 0
    train_subset: int | None = None
    # optimization
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    nesterov: bool = False
    scheduler: str = "none"
    step_size: int = 10
    step_gamma: float = 0.1
    plateau_patience: int = 3
    plateau_factor: float = 0.5
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    # run
    seed: int = 0
    precision: str = "auto"
    test_each_epoch: bool = False

    def validate(self) -> RunConfig:
        """Check every field; raise :class:`ConfigError` naming the first bad one."""
        from ..models import list_models, model_options

        _choice("model", self.model, list_models())
        _choice("scheduler", self.scheduler, SCHEDULERS)
        _choice("precision", self.precision, PRECISIONS)
        _choice("bypass", self.bypass, BYPASSES)
        for name in ("epochs", "batch_size", "image_size", "step_size", "base_e", "freq"):
            _at_least(name, getattr(self, name), 1)
        for name in ("plateau_patience", "warmup_epochs", "incr_e", "seed", "split_seed"):
            _at_least(name, getattr(self, name), 0)
        for name, high in UPPER_BOUNDS.items():
            value = getattr(self, name)
            if value is not None and value > high:
                raise ConfigError(f"{name} must be <= {high:,}, got {value:,}")
        _open_range("lr", self.lr, 0.0, None)
        _range("momentum", self.momentum, 0.0, 1.0, hi_open=True)
        _range("weight_decay", self.weight_decay, 0.0, None)
        _range("dropout", self.dropout, 0.0, 1.0, hi_open=True)
        _range("label_smoothing", self.label_smoothing, 0.0, 1.0, hi_open=True)
        _open_range("pct3x3", self.pct3x3, 0.0, 1.0)
        _range("squeeze_ratio", self.squeeze_ratio, 0.0, 1.0, lo_open=True)
        _open_range("val_fraction", self.val_fraction, 0.0, 1.0)
        _open_range("test_fraction", self.test_fraction, 0.0, 1.0)
        _range("step_gamma", self.step_gamma, 0.0, 1.0, lo_open=True)
        _range("plateau_factor", self.plateau_factor, 0.0, 1.0, lo_open=True, hi_open=True)
        if not -7 <= self.fire_delta <= 8:
            raise ConfigError(f"fire_delta must be an integer in -7..8, got {self.fire_delta}")
        if self.train_subset is not None:
            _at_least("train_subset", self.train_subset, 1)
        if self.nesterov and self.momentum == 0:
            raise ConfigError("nesterov needs momentum > 0")
        if self.warmup_epochs and self.scheduler in ("plateau", "onecycle"):
            raise ConfigError(
                f"warmup_epochs does not combine with scheduler={self.scheduler!r} "
                "(onecycle warms up by itself; plateau reacts to validation loss)"
            )
        accepted = set(model_options(self.model))
        for name in MODEL_FIELDS:
            if getattr(self, name) != _DEFAULTS[name] and name not in accepted:
                raise ConfigError(
                    f"model {self.model!r} has no option {name!r}; "
                    f"its options: {', '.join(sorted(accepted)) or '(none)'}"
                )
        return self

    def model_options(self) -> dict[str, Any]:
        """Return the model options that differ from their defaults."""
        return {n: getattr(self, n) for n in MODEL_FIELDS if getattr(self, n) != _DEFAULTS[n]}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """Return a stable hash of the resolved config: a run's identity in the store."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> RunConfig:
        return from_dict({**self.to_dict(), **changes})


_FIELDS = {f.name: f for f in fields(RunConfig)}
_DEFAULTS = {name: RunConfig().__getattribute__(name) for name in _FIELDS}


def field_names() -> list[str]:
    """Return every run-config field name."""
    return list(_FIELDS)


def from_dict(values: dict[str, Any], where: str = "config") -> RunConfig:
    """Build a validated config from a mapping; unknown fields and bad types are named."""
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {', '.join(unknown)}; valid fields: {', '.join(_FIELDS)}"
        )
    coerced = {k: coerce(k, v, where) for k, v in values.items()}
    try:
        return RunConfig(**coerced).validate()
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def coerce(name: str, value: Any, where: str = "config") -> Any:
    """Convert ``value`` (possibly a command-line string) to field ``name``'s type."""
    if name not in _FIELDS:
        raise ConfigError(f"{where}: unknown field {name!r}; valid fields: {', '.join(_FIELDS)}")
    default = _DEFAULTS[name]
    kind = type(default) if default is not None else _OPTIONAL_TYPES[name]
    if isinstance(value, str) and kind is not str:
        text = value.strip()
        if text.lower() in ("none", "null", ""):
            if default is None:
                return None
            raise ConfigError(f"{where}: field {name!r} cannot be empty")
        value = _parse_text(name, text, kind, where)
    if value is None and default is None:
        return None
    if kind is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: field {name!r} must be true or false, got {value!r}")
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            return int(value)
        raise ConfigError(f"{where}: field {name!r} must be an integer, got {value!r}")
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: field {name!r} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where}: field {name!r} must be a finite number, got {value!r}")
        return float(value)
    if kind is str and not isinstance(value, str):
        raise ConfigError(f"{where}: field {name!r} must be a string, got {value!r}")
    return value


_OPTIONAL_TYPES = {"init": str, "train_subset": int}


def _parse_text(name: str, text: str, kind: type, where: str) -> Any:
    try:
        if kind is bool:
            if text.lower() in ("true", "yes", "1", "on"):
                return True
            if text.lower() in ("false", "no", "0", "off"):
                return False
            raise ValueError
        return kind(float(text)) if kind is int and "e" in text.lower() else kind(text)
    except ValueError:
        raise ConfigError(
            f"{where}: field {name!r} expects {kind.__name__}, got {text!r}"
        ) from None


def _choice(name: str, value: Any, allowed: Any) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, allowed))}; got {value!r}")


def _at_least(name: str, value: int, low: int) -> None:
    if value < low:
        raise ConfigError(f"{name} must be >= {low}, got {value}")


def _open_range(name: str, value: float, lo: float, hi: float | None) -> None:
    _range(name, value, lo, hi, lo_open=True, hi_open=True)


def _range(
    name: str,
    value: float,
    lo: float,
    hi: float | None,
    lo_open: bool = False,
    hi_open: bool = False,
) -> None:
    ok = (value > lo if lo_open else value >= lo) and (
        hi is None or (value < hi if hi_open else value <= hi)
    )
    if not ok:
        left, right = "(" if lo_open else "[", ")" if hi_open or hi is None else "]"
        raise ConfigError(
            f"{name} must lie in {left}{lo}, {hi if hi is not None else 'inf'}{right}, got {value}"
        )
