"""What a study declares before any run, typed: its claims, its ``[report]`` section, its
protocol. Below both ``studies`` (which parses study files into it) and ``analysis`` (which
reads it back from the store): one definition, parsed once.

A study file states its hypotheses before any run (``[[claims]]``): the statement, the
metric, the two groups (or a correlation's x), the test, its direction, alpha, the Holm
family, how diverged runs count and the smallest effect of interest. This module parses and
checks them; :mod:`squeezelab.analysis.evaluate` decides them (supported, contradicted or
inconclusive, from intervals: :mod:`squeezelab.analysis.verdicts`). A stored study's spec
(a plain dict in the store) comes back as one :class:`DeclaredStudy`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from dataclasses import field as dc_field
from typing import Any, TypeGuard

from .errors import SqueezelabError
from .fields import refuse_unknown

ALPHA = 0.05  # a claim's default significance level

# evaluate.TEST_TYPES decides each
TESTS = ("paired", "welch", "noninferiority", "correlation", "equivalence")
DIRECTIONS = ("greater", "less", "two-sided")
RULES = ("chance", "exclude")
CLAIM_METRICS = ("test_acc", "val_acc")
ANY = "*"  # a treatment value matching every value but the control's


class ClaimError(SqueezelabError, ValueError):
    """A ``[[claims]]`` or ``[report]`` entry of a study file is malformed."""


@dataclass(frozen=True)
class ClaimSpec:
    """One pre-registered claim of a study file."""

    id: str
    statement: str
    test: str
    metric: str = "test_acc"
    field: str | None = None  # the run field whose value defines the two groups
    treatment: Any = None
    control: Any = None
    x: str | None = None  # correlation: the run field on the x axis
    relative_to: Any = None  # correlation: y is the metric minus the run at x = this value
    direction: str = "greater"
    where: dict[str, list[Any]] = dc_field(default_factory=dict)
    by: tuple[str, ...] = ()
    margin: float | None = None
    margin_reason: str = ""
    alpha: float = ALPHA
    family: str = "claims"
    diverged: str = "chance"
    min_effect: float | None = None  # smallest effect of interest, for the power analysis
    published: str = ""  # the study's own figure, shown beside ours
    reference: tuple[str, ...] = ()  # equivalence: the published tables each cell is held to

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def hypothesis(self) -> str:
        """The tested hypothesis in words."""
        sign = {"greater": ">", "less": "<", "two-sided": "!="}[self.direction]
        if self.test == "correlation":
            y = f"{self.metric} - {self.metric}[{self.x}={self.relative_to}]"
            if self.relative_to is None:
                y = self.metric
            return f"r({self.x}, {y}) {sign} 0"
        if self.test == "equivalence":
            cells = ", ".join(self.by) or "the runs"
            return (
                f"per cell of {cells}: mean - published ({', '.join(self.reference)}) "
                f"within +-{self.margin:g} points"
            )
        groups = f"{self.field}={_show(self.treatment)} vs {self.field}={_show(self.control)}"
        if self.test == "noninferiority":
            return f"{groups}: difference > -{self.margin:g} points"
        return f"{groups}: difference {sign} 0"


def _show(value: Any) -> str:
    return "none" if value is None else "any other" if value == ANY else str(value)


# Each [[claims]] key with what it holds (the documentation's reference is generated from
# this; tests/test_docs.py holds it to ClaimSpec's fields).
CLAIM_KEY_HELP = {
    "id": "Required: a short name, unique in the study (the report's anchor).",
    "statement": "Required: the claim in words, as a reader would state it.",
    "test": "Required: paired, welch, noninferiority, correlation or equivalence.",
    "metric": "What the claim tests: test_acc (default) or val_acc.",
    "field": "paired / welch / noninferiority: the run field whose value makes the groups.",
    "treatment": "The treatment group's value of `field` (\"*\": any value but the control's).",
    "control": "The control group's value of `field` (one value).",
    "x": "correlation: the run field on the x axis.",
    "relative_to": "correlation: y is the metric minus the run's at x = this value.",
    "direction": "greater (default), less or two-sided (equivalence: two-sided only).",
    "where": "Run field = [values]: only these runs enter the test.",
    "by": "One test per value of these run fields (equivalence: the fields of a published cell).",
    "margin": "noninferiority / equivalence: the margin in points (required there).",
    "margin_reason": "Why the margin is what it is (required with `margin`).",
    "alpha": "The claim's significance level (0.05).",
    "family": 'Holm\'s correction runs within a family (default "claims").',
    "diverged": "The primary rule for diverged runs: chance (default: they count at chance) "
    "or exclude; the report gives both.",
    "min_effect": "The smallest effect of interest (points, or r): below it a claim is "
    "contradicted, and power advice is for it.",
    "published": "The study's own figure, printed beside ours.",
    "reference": 'equivalence: the published tables each cell is held to (e.g. ["table_a1"]).',
}
_KEYS = set(ClaimSpec.__dataclass_fields__)


def parse_claim(
    raw: Any,
    where: str,
    coerce: Callable[[str, Any], Any],
    fields: Sequence[str],
    tables: Sequence[str] = (),
) -> ClaimSpec:
    """Validate one ``[[claims]]`` table; ``coerce(field, value)`` types run-field values;
    ``tables`` are the published tables an equivalence claim may name (``reference``)."""
    if not isinstance(raw, dict):
        raise ClaimError(f"{where}: each [[claims]] entry must be a table, got {raw!r}")
    refuse_unknown(raw, sorted(_KEYS), where, "key", ClaimError)
    for key in ("id", "statement", "test"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise ClaimError(f"{where}: {key!r} is required (a non-empty string)")
    where = f"{where} claim {raw['id']!r}"
    _one_of(where, "test", raw["test"], TESTS)
    _one_of(where, "metric", raw.get("metric", "test_acc"), CLAIM_METRICS)
    _one_of(where, "direction", raw.get("direction", "greater"), DIRECTIONS)
    _one_of(where, "diverged", raw.get("diverged", "chance"), RULES)
    values = dict(raw)

    def run_field(key: str) -> str:
        name = raw.get(key)
        if not isinstance(name, str) or name not in fields:
            raise ClaimError(f"{where}: {key!r} must name a run field, got {name!r}")
        return name

    def typed(name: str, value: Any) -> Any:
        if value == ANY or (name == "init" and value == "none"):
            return None if value == "none" else ANY
        try:
            return coerce(name, value)
        except ValueError as err:
            raise ClaimError(f"{where}: {err}") from None

    if raw["test"] == "equivalence":
        _equivalence(raw, values, where, tables)
    elif raw["test"] == "correlation":
        values["x"] = run_field("x")
        if "relative_to" in raw:
            values["relative_to"] = typed(values["x"], raw["relative_to"])
    else:
        name = values["field"] = run_field("field")
        for key in ("treatment", "control"):
            if key not in raw:
                raise ClaimError(f"{where}: {key!r} is required for a {raw['test']} test")
            values[key] = typed(name, raw[key])
        if values["control"] == ANY:
            raise ClaimError(f"{where}: 'control' must be one value, not {ANY!r}")
    if raw["test"] in ("noninferiority", "equivalence"):
        margin = raw.get("margin")
        if not _finite(margin) or margin <= 0:
            raise ClaimError(f"{where}: a {raw['test']} test needs 'margin' > 0 (points)")
        if not str(raw.get("margin_reason", "")).strip():
            raise ClaimError(f"{where}: state why the margin is {margin} ('margin_reason')")
        if raw["test"] == "noninferiority" and raw.get("direction", "greater") != "greater":
            raise ClaimError(f"{where}: a non-inferiority test is one-sided: direction 'greater'")
        values["margin"] = float(margin)
    filt = raw.get("where", {})
    if not isinstance(filt, dict):
        raise ClaimError(f"{where}: 'where' must be a table of run field = [values]")
    values["where"] = {}
    refuse_unknown(filt, fields, f"{where} 'where'", "run field", ClaimError)
    for name, allowed in filt.items():
        allowed = allowed if isinstance(allowed, list) else [allowed]
        values["where"][name] = [typed(name, v) for v in allowed]
    by = raw.get("by", [])
    if not isinstance(by, list) or any(b not in fields for b in by):
        raise ClaimError(f"{where}: 'by' must be a list of run fields, got {by!r}")
    values["by"] = tuple(by)
    if raw["test"] == "equivalence" and not by:
        raise ClaimError(
            f"{where}: an equivalence test needs 'by', the fields that make a published cell "
            '(e.g. ["model", "lr"]): each cell is held to its published value'
        )
    alpha = raw.get("alpha", ALPHA)
    if not _finite(alpha) or not 0 < alpha < 1:
        raise ClaimError(f"{where}: 'alpha' must lie in (0, 1), got {alpha!r}")
    min_effect = raw.get("min_effect")
    if min_effect is not None and (not _finite(min_effect) or min_effect <= 0):
        raise ClaimError(f"{where}: 'min_effect' must be a positive number, got {min_effect!r}")
    for key in ("family", "published", "margin_reason"):
        if key in raw and not isinstance(raw[key], str):
            raise ClaimError(f"{where}: {key!r} must be a string")
    return ClaimSpec(**values)


def _equivalence(raw: dict[str, Any], values: dict[str, Any], where: str,
                 tables: Sequence[str]) -> None:  # fmt: skip
    """An equivalence claim: its published tables, two-sided by construction."""
    ref = raw.get("reference")
    ref = [ref] if isinstance(ref, str) else ref
    if not isinstance(ref, list) or not ref or any(t not in tables for t in ref):
        raise ClaimError(
            f"{where}: an equivalence test needs 'reference', the published table(s) its "
            f"cells are held to, from {', '.join(tables) or '(none known)'}; "
            f"got {raw.get('reference')!r}"
        )
    for key in ("field", "treatment", "control", "x"):
        if key in raw:
            raise ClaimError(f"{where}: an equivalence test compares with published cells; "
                             f"it takes no {key!r}")  # fmt: skip
    if raw.get("direction", "two-sided") != "two-sided":
        raise ClaimError(f"{where}: an equivalence test is two-sided: drop 'direction'")
    values["reference"] = tuple(ref)
    values["direction"] = "two-sided"


def claim_from_dict(values: dict[str, Any]) -> ClaimSpec:
    """Rebuild a claim stored as a dict (as the store keeps a study's spec)."""
    data = {k: v for k, v in values.items() if k in _KEYS}
    data["by"] = tuple(data.get("by", ()))
    data["reference"] = tuple(data.get("reference", ()))
    return ClaimSpec(**data)


def _one_of(where: str, key: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ClaimError(f"{where}: {key!r} must be one of {', '.join(allowed)}; got {value!r}")


def _finite(v: Any) -> TypeGuard[float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# --- the [report] section ---------------------------------------------------------------------

FIGURES = ("curves", "relative", "design", "heatmap")
# Each [report] key with what it holds (held to ReportSpec's fields by tests/test_docs.py).
REPORT_KEY_HELP = {
    "title": "The study's section title in the report.",
    "rows": "The run fields that make the table's rows.",
    "columns": "The run field whose values make the table's columns.",
    "published": "The study's published tables to set beside ours (e.g. table_a1).",
    "figures": "The figures to draw: curves, relative, design, heatmap.",
    "best_by": "A best-point table per value of these run fields (validation-selected).",
    "best_fields": "The fields a best-point table shows.",
}


@dataclass(frozen=True)
class ReportSpec:
    """How the report shows a study: its table's rows and columns, figures, selection."""

    title: str = ""
    rows: tuple[str, ...] = ()
    columns: str | None = None
    published: tuple[str, ...] = ()
    figures: tuple[str, ...] = ()
    best_by: tuple[str, ...] = ()  # a best-point table per these fields (validation-selected)
    best_fields: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_report(raw: Any, where: str, fields: Sequence[str], tables: Sequence[str]) -> ReportSpec:
    """Validate a study file's ``[report]`` section."""
    if raw is None:
        return ReportSpec()
    if not isinstance(raw, dict):
        raise ClaimError(f"{where} [report]: must be a table")
    refuse_unknown(raw, ReportSpec.__dataclass_fields__, f"{where} [report]", "key", ClaimError)

    def names(key: str, choices: Sequence[str], what: str) -> tuple[str, ...]:
        value = raw.get(key, [])
        if not isinstance(value, list) or any(v not in choices for v in value):
            raise ClaimError(
                f"{where} [report]: {key!r} must be a list of {what} ({', '.join(choices)}); "
                f"got {value!r}"
            )
        return tuple(value)

    columns = raw.get("columns")
    if columns is not None and columns not in fields:
        raise ClaimError(f"{where} [report]: 'columns' must name a run field, got {columns!r}")
    title = raw.get("title", "")
    if not isinstance(title, str):
        raise ClaimError(f"{where} [report]: 'title' must be a string")
    return ReportSpec(
        title=title,
        rows=names("rows", fields, "run fields"),
        columns=columns,
        published=names("published", tables, "published tables"),
        figures=names("figures", FIGURES, "figures"),
        best_by=names("best_by", fields, "run fields"),
        best_fields=names("best_fields", fields, "run fields"),
    )


def report_from_dict(values: dict[str, Any] | None) -> ReportSpec:
    """Rebuild a stored ``[report]`` section."""
    if not values:
        return ReportSpec()
    known: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v
        for k, v in values.items()
        if k in ReportSpec.__dataclass_fields__
    }
    return ReportSpec(**known)


@dataclass(frozen=True)
class DeclaredStudy:
    """A stored study's declaration, typed: read once from the store's spec dict."""

    name: str
    description: str = ""
    claims: tuple[ClaimSpec, ...] = ()
    report: ReportSpec = dc_field(default_factory=ReportSpec)
    protocol: dict[str, Any] = dc_field(default_factory=dict)
    notes: dict[str, Any] = dc_field(default_factory=dict)
    axes: dict[str, Any] = dc_field(default_factory=dict)
    points: tuple[dict[str, Any], ...] = ()
    variants: tuple[dict[str, Any], ...] = ()
    best_of: dict[str, Any] = dc_field(default_factory=dict)

    @classmethod
    def from_stored(cls, name: str, spec: dict[str, Any] | None) -> DeclaredStudy:
        """Rebuild a study's declaration from the dict the store keeps (missing keys: empty)."""
        spec = spec or {}
        return cls(
            name=spec.get("name") or name,
            description=spec.get("description") or "",
            claims=tuple(claim_from_dict(c) for c in spec.get("claims", [])),
            report=report_from_dict(spec.get("report")),
            protocol=dict(spec.get("protocol") or {}),
            notes=dict(spec.get("notes") or {}),
            axes=dict(spec.get("axes") or {}),
            points=tuple(spec.get("points") or ()),
            variants=tuple(spec.get("variants") or ()),
            best_of=dict(spec.get("best_of") or {}),
        )
