"""A study's progress while its runs train: k of N, what finished or failed, the work left.

The runner feeds it (``start``, ``skip``, ``finish``); the log line, the tqdm bar and the ETA
read it. Work is a run's cost (``runner.work_of``: MACs x images x epochs), so the ETA weighs a
50-epoch AlexNet run above a 10-epoch SqueezeNet one instead of counting runs.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

from tqdm import tqdm


def run_label(config: Mapping[str, Any], fields: list[str]) -> str:
    """``lr=0.01 seed=2``: the fields that tell a run from its study's others."""
    return " ".join(
        f"{k}={config[k]:g}" if isinstance(config[k], float) else f"{k}={config[k]}" for k in fields
    )


def clock(seconds: float) -> str:
    """``12m05s`` or ``3h07m``."""
    m, s = divmod(round(seconds), 60)
    return f"{m // 60}h{m % 60:02d}m" if m >= 60 else f"{m}m{s:02d}s"


@dataclasses.dataclass
class Progress:
    study: str
    work: Mapping[str, float]  # each run's cost, by key
    started: int = 0
    skipped: int = 0  # finished or being trained by another process when its turn came
    done: int = 0
    failed: int = 0
    work_done: float = 0.0
    work_left: float = dataclasses.field(init=False)
    t0: float = dataclasses.field(default_factory=lambda: time.perf_counter())
    bar: tqdm | None = None

    def __post_init__(self) -> None:
        self.work_left = float(sum(self.work.values()))

    @property
    def total(self) -> int:
        return len(self.work)

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.t0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the rate work has finished so far; None before the first run ends."""
        if not self.work_done:
            return None
        return self.elapsed_s / self.work_done * self.work_left

    def start(self, key: str, label: str) -> str:
        """Count ``key`` as started; the log line that says so."""
        self.started += 1
        eta = f", ETA {clock(self.eta_s)}" if self.eta_s is not None else ""
        return (
            f"[{self.started}/{self.total}] {self.study} {label} "
            f"(elapsed {clock(self.elapsed_s)}{eta})"
        )

    def skip(self, key: str) -> None:
        """``key`` was started but another process had it: its work leaves the ETA."""
        self.started += 1
        self.skipped += 1
        self.work_left -= self.work[key]
        self._tick()

    def finish(self, key: str, failed: bool = False) -> None:
        self.done += not failed
        self.failed += failed
        self.work_left -= self.work[key]
        self.work_done += self.work[key]
        self._tick()

    def open_bar(self) -> Progress:
        """Show a tqdm bar (on a terminal only: ``disable=None`` turns it off in logs)."""
        self.bar = tqdm(total=self.total, desc=self.study, unit="run", disable=None)
        return self

    @property
    def bar_shown(self) -> bool:
        return self.bar is not None and not self.bar.disable

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def _tick(self) -> None:
        if self.bar is not None:
            self.bar.update(1)
