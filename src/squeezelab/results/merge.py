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
transaction. A study that both stores declare differently is refused before anything is
written: two declarations under one name would mix runs that answer different questions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .store import METRICS, Store, StoreError, _alive

FINISHED = ("done", "diverged")
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
        if self.live:
            text += (
                f"\n  {len(self.live)} run(s) being trained here now, left alone: "
                f"{', '.join(self.live)}"
            )
        return text


def _rows(store: Store, sql: str) -> list[dict[str, Any]]:
    return [dict(r) for r in store.conn.execute(sql)]


def plan_merge(source: Store, dest: Store | None, dest_name: str) -> MergePlan:
    """Decide the merge from reads alone (``dest`` None: an empty destination)."""
    plan = MergePlan(str(source.path), dest_name)
    here_runs = {r["key"]: r for r in _rows(dest, "SELECT * FROM runs")} if dest else {}
    here_specs = {s: dest.study_spec(s) for s in dest.studies()} if dest else {}
    here_members = (
        {(r["study"], r["key"]) for r in _rows(dest, "SELECT study, key FROM study_runs")}
        if dest
        else set()
    )
    for name in source.studies():
        spec = source.study_spec(name)
        if name not in here_specs:
            plan.studies_added.append(name)
        elif _canonical(here_specs[name]) != _canonical(spec):
            raise StoreError(
                f"study {name!r} is declared differently in {source.path} and in {dest_name} "
                "(its study file changed between the two): merging would mix runs that answer "
                "different questions. Merge into a new store, or re-run the study under one "
                "declaration"
            )
    for row in _rows(source, "SELECT * FROM runs"):
        key, here = row["key"], here_runs.get(row["key"])
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
    plan.memberships = sum(
        (r["study"], r["key"]) not in here_members
        for r in _rows(source, "SELECT study, key FROM study_runs")
    )
    return plan


def _canonical(spec: Any) -> str:
    return json.dumps(spec, sort_keys=True, default=str)


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a))
    return a == b


def merge_into(source: Store, dest: Store) -> MergePlan:
    """Plan and write the merge as one transaction, so that no trainer's write lands between
    the decision and the writing (all of it lands, or none)."""
    src_runs = {r["key"]: r for r in _rows(source, "SELECT * FROM runs")}
    with dest.transaction() as c:
        plan = plan_merge(source, dest, str(dest.path))
        for name in plan.studies_added:
            row = source.conn.execute(
                "SELECT spec, created FROM studies WHERE name=?", (name,)
            ).fetchone()
            c.execute("INSERT INTO studies VALUES (?, ?, ?)", (name, row["spec"], row["created"]))
        for key in plan.taken + plan.registered:
            row = dict(src_runs[key])
            if row["status"] == "running":  # its trainer is on the other machine, or gone
                row["status"] = "pending"
            values = [row[c] for c in _COPIED]
            c.execute(
                f"INSERT INTO runs (key, {', '.join(_COPIED)}) "
                f"VALUES (?, {', '.join('?' * len(_COPIED))}) "
                "ON CONFLICT(key) DO UPDATE SET "
                + ", ".join(f"{col}=excluded.{col}" for col in _COPIED if col != "config")
                + ", owner=NULL, heartbeat=NULL",
                (key, *values),
            )
        for key in plan.taken:
            c.execute("DELETE FROM metrics WHERE key=?", (key,))
            cols = ", ".join(("key", "epoch", *METRICS))
            c.executemany(
                f"INSERT INTO metrics ({cols}) VALUES ({', '.join('?' * (len(METRICS) + 2))})",
                source.conn.execute(f"SELECT {cols} FROM metrics WHERE key=?", (key,)).fetchall(),
            )
        c.executemany(
            "INSERT INTO study_runs VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            source.conn.execute("SELECT study, key, role FROM study_runs").fetchall(),
        )
    return plan


def merge_stores(
    sources: list[str | Path], dest: str | Path, dry_run: bool = False
) -> list[MergePlan]:
    """Merge each store of ``sources`` into ``dest`` in turn (created if missing). With
    ``dry_run`` each is only planned against ``dest`` as it is now, and nothing is written
    (``dest`` is not created). Every store is opened, and every study's declarations compared,
    before anything is written: a refusal leaves ``dest`` as it was."""
    dest_path = Path(dest)
    paths = [Path(s) for s in sources]
    declared: dict[str, tuple[str, str]] = {}  # study -> (canonical spec, where)
    if dest_path.is_file():
        with Store(dest_path, readonly=True) as here:
            declared.update(
                {n: (_canonical(here.study_spec(n)), str(dest_path)) for n in here.studies()}
            )
    for src_path in paths:
        if not src_path.is_file():
            raise StoreError(f"no store at {src_path}")
        if dest_path.exists() and src_path.resolve() == dest_path.resolve():
            raise StoreError(f"{src_path} is the destination store itself")
        with Store(src_path, readonly=True) as source:
            for name in source.studies():
                spec = _canonical(source.study_spec(name))
                seen = declared.setdefault(name, (spec, str(src_path)))
                if seen[0] != spec:
                    raise StoreError(
                        f"study {name!r} is declared differently in {src_path} and in "
                        f"{seen[1]} (its study file changed between the two): merging would mix "
                        "runs that answer different questions. Nothing was written; merge them "
                        "into separate stores, or re-run the study under one declaration"
                    )
    plans = []
    for src_path in paths:
        with Store(src_path, readonly=True) as source:
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
