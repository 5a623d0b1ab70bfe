"""Typed, documented fields: a value's default, help text and allowed range, declared once.

A model family declares its options, and the run config its fields, as frozen dataclasses
whose fields are made with :func:`option`. Everything else derives from that declaration:
the run config's model fields, the command line's flags and help, ``--set``, study files and
presets, and every range check. Strings from a command line or a file become values in one
function, :func:`coerce`. This module imports nothing heavy (no torch).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import ConfigError, SqueezelabError

T = TypeVar("T")


@dataclass(frozen=True)
class Spec:
    """What a field accepts: help text, choices or bounds (``None``: unbounded)."""

    help: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    kind: type | None = None  # the type of a field whose default is None


def option(default: Any, help: str, **spec: Any) -> Any:
    """A dataclass field with a default, help text and the values it accepts."""
    return dataclasses.field(default=default, metadata={"spec": Spec(help, **spec)})


@dataclass(frozen=True)
class FieldInfo:
    """One declared field: name, default, value type and :class:`Spec`."""

    name: str
    default: Any
    kind: type
    spec: Spec

    @property
    def optional(self) -> bool:
        return self.default is None


def describe(cls: type) -> dict[str, FieldInfo]:
    """The declared fields of dataclass ``cls``, in declaration order (read once per class)."""
    return _describe(cls)


@functools.cache
def _describe(cls: Any) -> dict[str, FieldInfo]:
    out = {}
    for f in dataclasses.fields(cls):
        spec = f.metadata.get("spec") or Spec(f.name.replace("_", " "))
        kind = spec.kind or type(f.default)
        if f.default is None and spec.kind is None:
            raise TypeError(f"{cls.__name__}.{f.name}: a None default needs Spec.kind")
        out[f.name] = FieldInfo(f.name, f.default, kind, spec)
    return out


def coerce(info: FieldInfo, value: Any, where: str = "config") -> Any:
    """Convert ``value`` (possibly a command-line or file string) to the field's type."""
    name, kind = info.name, info.kind
    if isinstance(value, str) and kind is not str:
        text = value.strip()
        if text.lower() in ("none", "null", ""):
            if info.optional:
                return None
            raise ConfigError(f"{where}: field {name!r} cannot be empty")
        value = _parse_text(name, text, kind, where)
    if value is None and info.optional:
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


def check(info: FieldInfo, value: Any) -> None:
    """Raise :class:`ConfigError` naming the field when ``value`` is outside what it accepts."""
    spec, name = info.spec, info.name
    if value is None and info.optional:
        return
    if spec.choices is not None and value not in spec.choices:
        allowed = ", ".join(map(str, spec.choices))
        raise ConfigError(f"{name} must be one of {allowed}; got {value!r}")
    if info.kind is int:  # integers: one bound at a time, in the words users type
        if spec.low is not None and value < spec.low:
            raise ConfigError(f"{name} must be >= {spec.low:,}, got {value:,}")
        if spec.high is not None and value > spec.high:
            raise ConfigError(f"{name} must be <= {spec.high:,}, got {value:,}")
        return
    lo, hi = spec.low, spec.high
    ok = (lo is None or (value > lo if spec.low_open else value >= lo)) and (
        hi is None or (value < hi if spec.high_open else value <= hi)
    )
    if not ok:
        left = "(" if spec.low_open or lo is None else "["
        right = ")" if spec.high_open or hi is None else "]"
        low_text = "-inf" if lo is None else lo
        high_text = "inf" if hi is None else hi
        raise ConfigError(f"{name} must lie in {left}{low_text}, {high_text}{right}, got {value}")


def refuse_unknown(
    given: Iterable[str],
    allowed: Iterable[str],
    where: str,
    what: str = "field",
    error: type[SqueezelabError] = ConfigError,
) -> None:
    """The one check for names a table may not hold (run fields, study sections, claim
    keys): names each unknown one, the closest allowed name, and every allowed one."""
    allowed = list(allowed)
    unknown = sorted(set(given) - set(allowed))
    if not unknown:
        return
    names = ", ".join(repr(u) for u in unknown)
    close = difflib.get_close_matches(unknown[0], allowed, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    plural = "s" if len(unknown) > 1 else ""
    valid = ", ".join(allowed) or "(none)"
    raise error(f"{where}: unknown {what}{plural} {names}{hint}; valid {what}s: {valid}")


def build(cls: type[T], values: dict[str, Any], where: str = "config") -> T:
    """Make ``cls`` from a mapping: unknown names refused, values coerced and checked."""
    infos = describe(cls)
    refuse_unknown(values, infos, where)
    typed = {k: coerce(infos[k], v, where) for k, v in values.items()}
    for k, v in typed.items():
        try:
            check(infos[k], v)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
    return cls(**typed)


def check_all(obj: Any) -> None:
    """Check every field of a dataclass instance made directly (not through :func:`build`)."""
    for name, info in describe(type(obj)).items():
        value = coerce(info, getattr(obj, name), type(obj).__name__)
        check(info, value)
