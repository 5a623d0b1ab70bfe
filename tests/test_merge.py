"""Merging stores: a study split across machines ends as one store, and nothing stored is lost."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from squeezelab.results import Store, StoreError
from squeezelab.results.merge import merge_stores
from squeezelab.results.store import owner_id
from squeezelab.studies import load_study, run_study
from squeezelab.studies.spec import parse_filters

from .conftest import last_json, run_cli

SPLIT_STUDY = """
description = "split across two machines"
seeds = [0, 1]
[base]
epochs = 1
image_size = 32
batch_size = 32
data = "synthetic:120"
[axes]
lr = [0.05, 0.01]
"""

SPEC = {"description": "d", "axes": {"lr": [0.1]}}


def _history(acc: float) -> list[dict]:
    return [{"epoch": 1, "train_loss": 2.0, "val_acc": acc - 1}, {"epoch": 2, "val_acc": acc}]


def _store(path: Path, runs: dict[str, str], spec: dict = SPEC, acc: float = 50.0) -> Path:
    """A store holding study 's' with runs ``{key: status}``; finished ones score ``acc``."""
    with Store(path) as store:
        store.add_study("s", spec, [(k, {"lr": 0.1, "seed": i}, "run") for i, k in enumerate(runs)])
        for key, status in runs.items():
            if status in ("done", "diverged"):
                result = {
                    "val_acc": acc,
                    "test_acc": acc,
                    "epochs": 2,
                    "diverged": status == "diverged",
                }
                store.finish_run(key, result, _history(acc), {"key": key})
            elif status == "failed":
                store.fail_run(key, "boom")
            elif status == "running":  # a trainer that died on the other machine
                store.claim_run(key, "/elsewhere/" + key, "otherhost:1:dead")
    return path


def _table(path: Path) -> list[tuple]:
    with Store(path, readonly=True) as store:
        runs = [
            (r.key, r.status, r.result.val_acc, r.history, r.error, r.recipe)
            for r in store.runs(role=None)
        ]
        metrics = store.conn.execute("SELECT COUNT(*) FROM metrics").fetchone()[0]
    return [*runs, metrics]


def test_a_study_split_across_two_stores_merges_into_the_single_store_result(
    tmp_path: Path,
) -> None:
    """``--only seed=0`` on one machine and ``seed=1`` on another, merged, equal one store that
    ran all four runs: same keys, results and histories; the study has nothing left to run."""
    study = tmp_path / "split.toml"
    study.write_text(SPLIT_STUDY)
    spec = load_study(str(study))
    here, there = tmp_path / "here" / "runs.db", tmp_path / "there" / "runs.db"
    run_study(spec, here, log=lambda m: None, only=parse_filters(["seed=0"]))
    run_study(spec, there, log=lambda m: None, only=parse_filters(["seed=1"]))
    with Store(there, readonly=True) as store:
        theirs = {r.key: r for r in store.runs("split") if r.finished_ok}
    assert len(theirs) == 2

    dry = run_cli("results", "merge", str(there), "--db", str(here), "--dry-run", "--json")
    assert last_json(dry.stdout)["merges"][0]["runs_taken"] == 2
    with Store(here, readonly=True) as store:
        assert store.status_counts("split")["left"] == 2  # the dry run wrote nothing

    out = run_cli("results", "merge", str(there), "--db", str(here))
    assert "2 finished run(s) taken" in out.stdout
    with Store(here, readonly=True) as store:
        assert store.status_counts("split") == {
            "done": 4,
            "running": 0,
            "interrupted": 0,
            "failed": 0,
            "diverged": 0,
            "left": 0,
        }
        merged = {r.key: r for r in store.runs("split")}
    for key, run in theirs.items():
        assert merged[key].result == run.result and merged[key].history == run.history
        assert merged[key].recipe == run.recipe and merged[key].run_dir == run.run_dir
    messages: list[str] = []
    run_study(spec, here, log=messages.append)
    assert any("4 already finished, 0 to run" in m for m in messages)
    # Merging again changes nothing and says so.
    again = last_json(run_cli("results", "merge", str(there), "--db", str(here), "--json").stdout)
    assert again["merges"][0]["runs_taken"] == 0 and again["merges"][0]["runs_same"] == 2


def test_merge_keeps_what_the_destination_finished_and_fills_what_it_did_not(
    tmp_path: Path,
) -> None:
    here = _store(tmp_path / "a.db", {"k1": "done", "k2": "failed", "k3": "done"}, acc=50.0)
    there = _store(
        tmp_path / "b.db",
        {"k1": "done", "k2": "done", "k3": "diverged", "k4": "running", "k5": "failed"},
        acc=60.0,
    )
    [plan] = merge_stores([there], here)
    assert sorted(plan.taken) == ["k2"] and sorted(plan.registered) == ["k4", "k5"]
    assert sorted(plan.conflicts) == ["k1", "k3"]  # finished in both, apart: ours kept
    assert "different results; this store's kept: k1, k3" in plan.summary()
    with Store(here, readonly=True) as store:
        runs = {r.key: r for r in store.runs("s")}
    assert runs["k1"].result.val_acc == 50.0 and runs["k3"].status == "done"
    assert runs["k2"].status == "done" and runs["k2"].result.val_acc == 60.0
    assert [m["val_acc"] for m in runs["k2"].history] == [59.0, 60.0]
    assert runs["k2"].error is None
    # A run whose trainer was on the other machine is still to do here, unclaimed.
    assert runs["k4"].status == "pending" and runs["k4"].owner is None
    assert runs["k5"].status == "failed" and runs["k5"].error == "boom"


def test_merge_leaves_a_run_this_machine_is_training_alone(tmp_path: Path) -> None:
    here = _store(tmp_path / "a.db", {"k1": "pending"})
    with Store(here) as store:
        assert store.claim_run("k1", str(tmp_path / "k1"), owner_id())  # this live process
    there = _store(tmp_path / "b.db", {"k1": "done"})
    [plan] = merge_stores([there], here)
    assert plan.live == ["k1"] and not plan.taken
    with Store(here, readonly=True) as store:
        assert store.statuses("s") == {"k1": "running"}


def test_a_study_declared_differently_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    here = _store(tmp_path / "a.db", {"k1": "done"})
    before = _table(here)
    same = _store(tmp_path / "b.db", {"k2": "done"})
    changed = _store(tmp_path / "c.db", {"k3": "done"}, spec={**SPEC, "axes": {"lr": [0.2]}})
    with pytest.raises(StoreError, match=r"study 's' is declared differently.*Nothing was written"):
        merge_stores([same, changed], here)
    assert _table(here) == before  # not even the first, compatible source landed
    bad = run_cli("results", "merge", str(changed), "--db", str(here), check=False)
    assert bad.returncode == 2 and "declared differently" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_merge_refuses_missing_sources_itself_and_other_files(tmp_path: Path) -> None:
    here = _store(tmp_path / "a.db", {"k1": "done"})
    with pytest.raises(StoreError, match="no store at"):
        merge_stores([tmp_path / "missing.db"], here)
    with pytest.raises(StoreError, match="is the destination store itself"):
        merge_stores([here], here)
    junk = tmp_path / "junk.db"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(StoreError, match="not a usable squeezelab store"):
        merge_stores([junk], here)
    # A dry run into a store that does not exist plans against nothing and creates nothing.
    new = tmp_path / "new" / "runs.db"
    [plan] = merge_stores([here], new, dry_run=True)
    assert plan.taken == ["k1"] and plan.studies_added == ["s"] and not new.exists()
    [plan] = merge_stores([here], new)
    assert _table(new)[:-1] == _table(here)[:-1] and json.dumps(plan.to_dict())
