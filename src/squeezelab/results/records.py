"""Typed records of stored runs (Optuna's ``FrozenTrial`` is the model).

``record.config.lr``, ``record.result.test_acc``, ``record.history``: the store hands these
out, analysis reads them, and nothing downstream parses JSON or indexes raw rows.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

CHANCE_BAND = 1.0  # accuracy points around chance that count as "learned nothing"
RESULT_FIELDS = ("val_acc", "val_loss", "test_acc", "test_loss", "train_loss", "epochs", "train_s")
FINISHED = ("done", "diverged")  # the statuses of a run with an outcome analysis can count


def precision_mix(precisions: Iterable[str | None]) -> str:
    """``'bf16 x 12, fp32 x 8'`` when runs were computed at more than one known precision,
    else ``''``. A run asks for ``auto``, which a GPU or an AMX CPU resolves to bf16 and an
    AVX2 CPU to fp32: the same run at the two is two numerically different runs, so a table
    or a comparison that mixes them should say so."""
    counts = Counter(p for p in precisions if p)
    if len(counts) < 2:
        return ""
    return ", ".join(f"{p} x {n}" for p, n in sorted(counts.items()))


def machine_of(provenance: Mapping[str, Any] | None) -> str:
    """Where and how a run computed, from its provenance: 'AMD EPYC, fp32, 1 thread'. Epoch times
    of two such settings (a GPU and a CPU, one thread or two) are not one sample."""
    prov = provenance or {}
    parts = [str(prov.get("device_name", "?"))]
    if prov.get("precision"):
        parts.append(str(prov["precision"]))
    threads = prov.get("threads")
    if threads and str(prov.get("device", "cpu")) == "cpu":
        parts.append(f"{threads} thread{'s' if threads != 1 else ''}")
    return ", ".join(parts)


CHANCE_ALPHA = 0.05  # the one-sided binomial test that tells "learned" from "at chance"


def at_chance(acc: float | None, chance: float, images: int | None = None) -> bool:
    """Whether an accuracy (percent) is no better than guessing, on ``images`` evaluated.

    With the count known, a run is at chance when its number of correct images is not above
    ``chance`` by a one-sided binomial test at ``CHANCE_ALPHA``: on 60 validation images 20%
    can be luck, on 10,000 test images 10.6% is not. Without a count (runs stored before
    counts were, the study's tables without theirs), within ``CHANCE_BAND`` points of chance.
    ``None`` (a run with no accuracy) is at chance.
    """
    if acc is None:
        return True
    if not images:
        return abs(acc - chance) <= CHANCE_BAND
    from scipy.stats import binom  # here: the store's readers must not pay for scipy

    correct = round(acc / 100.0 * images)
    # P(X >= correct) when every image is a guess: small means the run learned something.
    return bool(binom.sf(correct - 1, images, chance / 100.0) >= CHANCE_ALPHA)


def left_chance(acc: float, chance: float, images: int | None = None) -> bool:
    """Whether an accuracy is above chance (``at_chance``'s complement): one at chance learned
    nothing (a best cell there is no winner; a run there after a few epochs may have stalled)."""
    return not at_chance(acc, chance, images)


class Fields(Mapping[str, Any]):
    """A run's config fields, read-only, by key (``c["lr"]``) or attribute (``c.lr``)."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_values", dict(values))

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"run config has no field {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a stored run's config is read-only")

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Fields({self._values!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Fields, (self._values,))


@dataclass(frozen=True)
class RunScore:
    """A finished run's figures (accuracies in percent); all None until it finishes."""

    val_acc: float | None = None
    val_loss: float | None = None
    test_acc: float | None = None
    test_loss: float | None = None
    train_loss: float | None = None
    epochs: int | None = None
    train_s: float | None = None


@dataclass(frozen=True)
class RunRecord:
    """One run as stored: identity, config, status, result, per-epoch history and provenance."""

    key: str
    config: Fields
    status: str = "done"
    result: RunScore = field(default_factory=RunScore)
    history: tuple[dict[str, Any], ...] = ()
    provenance: dict[str, Any] | None = None
    study: str | None = None
    role: str | None = None
    run_dir: str | None = None
    attempts: int = 0
    error: str | None = None
    owner: str | None = None
    heartbeat: float | None = None
    started: float | None = None
    finished: float | None = None

    @classmethod
    def of(
        cls, key: str, config: Mapping[str, Any], status: str = "done", **values: Any
    ) -> RunRecord:
        """A record from plain values: result figures by name, other fields as they are."""
        score = {k: values.pop(k) for k in RESULT_FIELDS if k in values}
        return cls(key, Fields(config), status, RunScore(**score), **values)

    @property
    def precision(self) -> str | None:
        """The precision the run was computed at (``auto`` resolved), when it recorded one."""
        return (self.provenance or {}).get("precision")

    def images(self, metric: str) -> int | None:
        """How many images ``metric`` (``val_acc`` / ``test_acc``) was measured on, when the
        run recorded it."""
        split = {"val_acc": "val_images", "test_acc": "test_images"}.get(metric)
        value = (self.provenance or {}).get(split) if split else None
        return int(value) if value else None

    def stalled(self, metric: str, chance: float) -> bool:
        """Finished without diverging, yet at chance on ``metric`` (it learned nothing)."""
        if self.status != "done":
            return False
        return at_chance(getattr(self.result, metric), chance, self.images(metric))

    @property
    def finished_ok(self) -> bool:
        """Done or diverged: the run has an outcome that analysis can count."""
        return self.status in FINISHED

    def replace(self, **changes: Any) -> RunRecord:
        return dataclasses.replace(self, **changes)

    def flat(self) -> dict[str, Any]:
        """One tidy row: study, role, key, status, every config field, results, error."""
        row = {"study": self.study, "role": self.role, "key": self.key, "status": self.status}
        row.update(self.config)
        row.update(dataclasses.asdict(self.result), error=self.error)
        return row
