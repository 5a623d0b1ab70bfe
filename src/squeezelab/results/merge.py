"""Merge one results store into another: runs trained on other machines join this one.

A study split across machines (``--only seed=0,1`` here, ``--only seed=2,3`` on a GPU box, or a
store that came back from a lent machine) ends as several stores; the report and ``study run``
read one. Runs are identified by their key (a hash of every field and of the data's content),
so the same run on two machines has one key, and merging decides run by run:

- a finished run (done or diverged) the destination lacks, or holds unfinished, is taken with
  its result, recipe and every epoch's metrics;
- a run finished in both is kept as the destination has it; if the two results differ (the
  same run trained twice and ended apart), the merge says so and keeps the destination's;
- a run the source has not finished is registered (pending, or failed with its error) only if
  the destination lacks it, so that ``study run`` knows it is still to do;
- a run the destination is training right now (a live claim) is left alone.

Nothing the destination holds is overwritten but unfinished rows, and the whole merge is one
transaction. A study whose runs differ between the stores (its study file, or the ``--set``
values it ran with, changed) is refused before anything is written: two declarations under one
name would mix runs that answer different questions. Its text may differ elsewhere (the data
path on each machine, a description, a report title): the destination's is kept, and said.

A run's key holds its data path as spelled where it trained. The same data under another path
(``.data/train.tar.gz`` on a lent GPU, ``../shared/...`` here) gives other keys; a ``rekey``
function (the command line's ``--data-path THEIRS=OURS``, which checks each key against the
content of OURS) gives the source's runs the keys they would have here before anything is
compared.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .records import FINISHED, precision_mix
from .store import METRIC_COLUMNS, Store, StoreError, _alive, insert_looks, metric_select

_COPIED = (
    "config",
    "status",
    "seed",
    "run_dir",
    "val_acc",
    "val_loss",
    "test_acc",
    "test_loss",
    "train_loss",
    "epochs",
    "train_s",
    "started",
    "finished",
    "attempts",
    "recipe",
    "error",
)
_COMPARED = ("val_acc", "test_acc", "epochs", "status")

# (key, config) of a source run -> the (key, config) it has here; raises StoreError when the
# run cannot be the same run here.
Rekey = Callable[[str, dict[str, Any]], tuple[str, dict[str, Any]]]


@dataclass
class MergePlan:
    """What merging ``source`` into ``dest`` does, decided before anything is written."""

    source: str
    dest: str
    studies_added: list[str] = field(default_factory=list)
    taken: list[str] = field(default_factory=list)  # finished in source, new or unfinished here
    registered: list[str] = field(default_factory=list)  # unfinished in source, new here
    same: list[str] = field(default_factory=list)  # finished in both, same result
    conflicts: list[str] = field(default_factory=list)  # finished in both, results differ
    live: list[str] = field(default_factory=list)  # being trained here now: left alone
    # studies whose text differs outside their runs (description, claims, report, the data
    # path): this store's declaration kept
    declarations_kept: list[str] = field(default_factory=list)
    # studies whose finished runs, merged, were computed at more than one precision
    mixed_precision: list[str] = field(default_factory=list)
    memberships: int = 0  # (study, run) pairs new to dest

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "dest": self.dest,
            "studies_added": self.studies_added,
            "runs_taken": len(self.taken),
            "runs_registered": len(self.registered),
            "runs_same": len(self.same),
            "conflicts": self.conflicts,
            "left_live": self.live,
            "declarations_kept": self.declarations_kept,
            "mixed_precision": self.mixed_precision,
            "memberships_added": self.memberships,
        }

    def summary(self) -> str:
        parts = [
            f"{len(self.taken)} finished run(s) taken",
            f"{len(self.same)} already here with the same result",
            f"{len(self.registered)} unfinished run(s) registered as still to do",
        ]
        if self.studies_added:
            parts.append(f"studies added: {', '.join(self.studies_added)}")
        text = f"{self.source} -> {self.dest}: " + "; ".join(parts)
        if self.conflicts:
            text += (
                f"\n  {len(self.conflicts)} run(s) finished in both stores with different "
                f"results; this store's kept: {', '.join(self.conflicts)}"
            )
        if self.declarations_kept:
            text += (
                "\n  studies whose stored declaration differs outside their runs (this store's "
                f"kept): {'; '.join(self.declarations_kept)}"
            )
        if self.mixed_precision:
            text += (
                "\n  studies whose finished runs were computed at more than one precision (the "
                "same run at bf16 and at fp32 ends apart; read their tables with that in mind): "
                + "; ".join(self.mixed_precision)
            )
        if self.live:
            text += (
                f"\n  {len(self.live)} run(s) being trained here now, left alone: "
                f"{', '.join(self.live)}"
            )
        return text


def _rows(store: Store, sql: str, args: tuple = ()) -> list[dict[str, Any]]:
    return [dict(r) for r in store.conn.execute(sql, args)]


@dataclass
class _Source:
    """A source store read once, its runs under the keys they have in the destination."""

    path: str
    studies: dict[str, dict[str, Any]]  # name -> {"spec": text, "created": time}
    runs: dict[str, dict[str, Any]]
    members: list[tuple[str, str, str]]  # (study, key, role)
    metrics: dict[str, list[tuple]]
    looks: dict[str, list[dict[str, Any]]]  # a sequential study's recorded looks

    @classmethod
    def read(cls, store: Store, rekey: Rekey | None = None) -> _Source:
        runs: dict[str, Any] = {}
        keys: dict[str, str] = {}
        for row in _rows(store, "SELECT * FROM runs"):
            key, config = row["key"], json.loads(row["config"])
            if rekey is not None:
                new_key, new_config = rekey(key, config)
                if new_key != key:
                    row["config"] = json.dumps(new_config, sort_keys=True)
                key = new_key
            keys[row["key"]] = key
            if key in runs and runs[key]["status"] in FINISHED:
                continue  # the store held the run under both paths: its finished one counts
            runs[key] = {**row, "key": key, "origin": row["key"]}
        metrics: dict[str, list[tuple]] = {}
        names = [r["name"] for r in _rows(store, "SELECT name FROM studies")]
        kept = {row["origin"] for row in runs.values()}
        select = metric_select(store.conn)
        for m in store.conn.execute(f"SELECT {select} FROM metrics ORDER BY key, epoch"):
            if m[0] in kept:  # each run's own epochs, under the key it has here
                metrics.setdefault(keys[m[0]], []).append((keys[m[0]], *m[1:]))
        return cls(
            str(store.path),
            {r["name"]: r for r in _rows(store, "SELECT name, spec, created FROM studies")},
            runs,
            [
                (r["study"], keys.get(r["key"], r["key"]), r["role"])
                for r in _rows(store, "SELECT study, key, role FROM study_runs")
            ],
            metrics,
            {n: rows for n in names if (rows := store.looks(n))},
        )

    def declarations(self) -> dict[str, tuple[frozenset, dict[str, Any]]]:
        return _group(self.members, {n: json.loads(r["spec"]) for n, r in self.studies.items()})


def _declarations(store: Store) -> dict[str, tuple[frozenset, dict[str, Any]]]:
    """Each study's runs (key and role) and stored declaration."""
    members = [tuple(r) for r in store.conn.execute("SELECT study, key, role FROM study_runs")]
    return _group(members, {name: store.study_spec(name) or {} for name in store.studies()})


def _group(members: list, specs: dict[str, dict]) -> dict[str, tuple[frozenset, dict[str, Any]]]:
    runs: dict[str, set] = {name: set() for name in specs}
    for study, key, role in members:
        runs.setdefault(study, set()).add((key, role))
    return {name: (frozenset(keys), specs.get(name, {})) for name, keys in runs.items()}


def plan_merge(source: _Source, dest: Store | None, dest_name: str) -> MergePlan:
    """Decide the merge from reads alone (``dest`` None: an empty destination)."""
    plan = MergePlan(source.path, dest_name)
    here_runs = {r["key"]: r for r in _rows(dest, "SELECT * FROM runs")} if dest else {}
    here_studies = _declarations(dest) if dest else {}
    here_members = {(name, key) for name, (runs, _) in here_studies.items() for key, _ in runs}
    for name, (runs, spec) in source.declarations().items():
        if name not in here_studies:
            plan.studies_added.append(name)
            continue
        _same_runs(name, here_studies[name][0], runs, dest_name, source.path)
        differ = sorted(
            k
            for k in {*spec, *here_studies[name][1]}
            if _canonical(spec.get(k)) != _canonical(here_studies[name][1].get(k))
        )
        if differ:
            plan.declarations_kept.append(f"{name} ({', '.join(differ)})")
    for key, row in source.runs.items():
        here = here_runs.get(key)
        if row["status"] in FINISHED:
            if here is None:
                plan.taken.append(key)
            elif here["status"] in FINISHED:
                same = all(_close(here[c], row[c]) for c in _COMPARED)
                (plan.same if same else plan.conflicts).append(key)
            elif here["status"] == "running" and _alive(here):
                plan.live.append(key)
            else:
                plan.taken.append(key)
        elif here is None:
            plan.registered.append(key)
    plan.memberships = sum((s, k) not in here_members for s, k, _ in source.members)
    plan.mixed_precision = _mixed_precision(
        here_members | {(s, k) for s, k, _ in source.members},
        {
            **{k: r for k, r in here_runs.items() if r["status"] in FINISHED},
            **{k: source.runs[k] for k in plan.taken},
        },
    )
    return plan


def _mixed_precision(members: set[tuple[str, str]], finished: dict[str, dict]) -> list[str]:
    """Studies whose finished runs, once merged, were computed at more than one precision, as
    'study: bf16 x 12, fp32 x 8' (see :func:`precision_mix`)."""
    by_study: dict[str, list[str | None]] = {}
    for study, key in members:
        if key in finished:
            recipe = json.loads(finished[key]["recipe"] or "{}")
            by_study.setdefault(study, []).append(recipe.get("precision"))
    mixes = {study: precision_mix(precisions) for study, precisions in by_study.items()}
    return [f"{study}: {mix}" for study, mix in sorted(mixes.items()) if mix]


def _same_runs(name: str, a: frozenset, b: frozenset, where_a: str, where_b: str) -> None:
    """Refuse a study whose two stores declare different runs (a changed study file)."""
    if a != b:
        raise StoreError(
            f"study {name!r} declares different runs in {where_b} and in {where_a} "
            f"({len(b - a)} run(s) only in the first, {len(a - b)} only in the second: its study "
            "file, its --set values or its data path changed between the two): merging would mix "
            "runs that answer different questions. Nothing was written; merge them into separate "
            "stores, or re-run the study under one declaration (the same data under another "
            "path: --data-path THEIRS=OURS)"
        )


def _canonical(spec: Any) -> str:
    return json.dumps(spec, sort_keys=True, default=str)


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a))
    return a == b


def merge_into(source: _Source, dest: Store) -> MergePlan:
    """Plan and write the merge as one transaction, so that no trainer's write lands between
    the decision and the writing (all of it lands, or none)."""
    with dest.transaction() as c:
        plan = plan_merge(source, dest, str(dest.path))
        for name in plan.studies_added:
            study = source.studies[name]
            c.execute(
                "INSERT INTO studies VALUES (?, ?, ?)", (name, study["spec"], study["created"])
            )
        for key in plan.taken + plan.registered:
            row = dict(source.runs[key])
            if row["status"] == "running":  # its trainer is on the other machine, or gone
                row["status"] = "pending"
            c.execute(
                f"INSERT INTO runs (key, {', '.join(_COPIED)}) "
                f"VALUES (?, {', '.join('?' * len(_COPIED))}) "
                "ON CONFLICT(key) DO UPDATE SET "
                + ", ".join(f"{col}=excluded.{col}" for col in _COPIED if col != "config")
                + ", owner=NULL, heartbeat=NULL",
                (key, *(row[col] for col in _COPIED)),
            )
        cols = ", ".join(("key", "epoch", *METRIC_COLUMNS))
        marks = ", ".join("?" * (2 + len(METRIC_COLUMNS)))
        for key in plan.taken:
            c.execute("DELETE FROM metrics WHERE key=?", (key,))
            c.executemany(
                f"INSERT INTO metrics ({cols}) VALUES ({marks})",
                source.metrics.get(key, []),
            )
        c.executemany(
            "INSERT INTO study_runs VALUES (?, ?, ?) ON CONFLICT DO NOTHING", source.members
        )
        for name, rows in source.looks.items():
            _merge_looks(c, dest, name, rows, source.path)
    return plan


def _merge_looks(
    c: sqlite3.Connection, dest: Store, name: str, rows: list[dict[str, Any]], where: str
) -> None:
    """A sequential study's looks travel with it: its verdicts were read at them, and without
    them the report would read the study as a fixed design. Two stores that looked at one
    study differently cannot both be right: refused."""
    held = dest.looks(name)
    if not held:
        insert_looks(c, name, rows)
        return

    def decisions(looks: list[dict[str, Any]]) -> set[tuple]:
        return {(r["look"], r["claim"], r["rule"], r["seeds"], r["verdict"]) for r in looks}

    if decisions(held) != decisions(rows):
        raise StoreError(
            f"study {name!r} was run sequentially in both {where} and {dest.path}, and their "
            "looks differ: merge refused (merge into a new store, or keep them apart)"
        )


def merge_stores(
    sources: list[str | Path], dest: str | Path, dry_run: bool = False, rekey: Rekey | None = None
) -> list[MergePlan]:
    """Merge each store of ``sources`` into ``dest`` in turn (created if missing). With
    ``dry_run`` each is only planned against ``dest`` as it is now, and nothing is written
    (``dest`` is not created). Every source is read, re-keyed with ``rekey`` and its studies'
    runs compared before anything is written: a refusal leaves ``dest`` as it was."""
    dest_path = Path(dest)
    read: list[_Source] = []
    declared: dict[str, tuple[frozenset, str]] = {}  # study -> (its runs, where)
    if dest_path.is_file():
        with Store(dest_path, readonly=True) as here:
            declared.update({n: (d[0], str(dest_path)) for n, d in _declarations(here).items()})
    for src in sources:
        src_path = Path(src)
        if not src_path.exists():  # a directory or junk: the store's own error names it
            raise StoreError(f"no store at {src_path}")
        if dest_path.exists() and src_path.resolve() == dest_path.resolve():
            raise StoreError(f"{src_path} is the destination store itself")
        with Store(src_path, readonly=True) as store:
            source = _Source.read(store, rekey)
        for name, (runs, _) in source.declarations().items():
            seen = declared.setdefault(name, (runs, source.path))
            _same_runs(name, seen[0], runs, seen[1], source.path)
        read.append(source)
    plans = []
    for source in read:
        if dry_run:
            if dest_path.is_file():
                with Store(dest_path, readonly=True) as here:
                    plans.append(plan_merge(source, here, str(dest_path)))
            else:
                plans.append(plan_merge(source, None, str(dest_path)))
            continue
        with Store(dest_path) as here:
            plans.append(merge_into(source, here))
    return plans
