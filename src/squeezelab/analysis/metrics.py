"""Every metric defined once: its name in the store, its label, its unit (pycls metrics_info)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .stats import Summary


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    unit: str
    bounds: tuple[float, float] | None = None  # the values it can take (an interval is cut there)

    @property
    def header(self) -> str:
        return f"{self.label} ({self.unit})" if self.unit else self.label

    def cut(self, sm: Summary) -> tuple[Summary, bool]:
        """``sm`` with its interval cut to ``bounds``, and whether it ran past them."""
        if self.bounds is None:
            return sm, False
        return sm.within(*self.bounds), sm.runs_past(*self.bounds)


METRICS = {
    m.name: m
    for m in (
        Metric("test_acc", "Test accuracy", "%", (0.0, 100.0)),
        Metric("val_acc", "Validation accuracy", "%", (0.0, 100.0)),
        Metric("train_loss", "Training loss", ""),
        Metric("val_loss", "Validation loss", ""),
        Metric("rel_acc", "Accuracy relative to plain SqueezeNet", "points"),
        Metric("params", "Parameters", ""),
        Metric("size_mb", "Size (float32)", "MB"),
        Metric("macs", "Multiply-accumulates", "M"),
        Metric("train_s", "Training time", "s"),
    )
}
