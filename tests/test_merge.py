"""Merging stores: a study split across machines ends as one store, and nothing stored is lost."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from squeezelab.results import Store, StoreError
from squeezelab.results.merge import merge_stores
from squeezelab.results.store import owner_id
from squeezelab.studies import load_study, run_study
from squeezelab.studies.spec import parse_filters

from .conftest import last_json, run_cli, write_jpeg_archive

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


def _store(
    path: Path,
    runs: dict[str, str],
    spec: dict = SPEC,
    acc: float = 50.0,
    study: str = "s",
    precision: str = "fp32",
) -> Path:
    """A store holding ``study`` with runs ``{key: status}``; finished ones score ``acc``."""
    with Store(path) as store:
        entries = [(k, {"lr": 0.1, "seed": i}, "run") for i, k in enumerate(runs)]
        store.add_study(study, spec, entries)
        for key, status in runs.items():
            if status in ("done", "diverged"):
                result = {
                    "val_acc": acc,
                    "test_acc": acc,
                    "epochs": 2,
                    "diverged": status == "diverged",
                }
                store.finish_run(key, result, _history(acc), {"key": key, "precision": precision})
            elif status == "failed":
                store.fail_run(key, "boom")
            elif status == "running":  # a trainer that died on the other machine
                store.lease_run(key, "/elsewhere/" + key, "otherhost:1:dead")
    return path


def _table(path: Path) -> list[tuple]:
    with Store(path, readonly=True) as store:
        runs = [
            (r.key, r.status, r.result.val_acc, r.history, r.error, r.provenance)
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
        assert merged[key].provenance == run.provenance and merged[key].run_dir == run.run_dir
    messages: list[str] = []
    run_study(spec, here, log=messages.append)
    assert any("4 already finished, 0 to run" in m for m in messages)
    # Merging again changes nothing and says so.
    again = last_json(run_cli("results", "merge", str(there), "--db", str(here), "--json").stdout)
    assert again["merges"][0]["runs_taken"] == 0 and again["merges"][0]["runs_same"] == 2


def test_merge_keeps_what_the_destination_finished_and_fills_what_it_did_not(
    tmp_path: Path,
) -> None:
    here = _store(
        tmp_path / "a.db", {"k1": "done", "k2": "failed", "k3": "done"}, acc=50.0, precision="bf16"
    )
    there = _store(tmp_path / "b.db", {"k1": "done", "k2": "done", "k3": "diverged"}, acc=60.0)
    # A study this store lacks, part-way on the other machine.
    _store(there, {"k4": "running", "k5": "failed", "k6": "done"}, study="t", acc=60.0)
    [plan] = merge_stores([there], here)
    assert sorted(plan.taken) == ["k2", "k6"] and sorted(plan.registered) == ["k4", "k5"]
    assert plan.studies_added == ["t"]
    assert sorted(plan.conflicts) == ["k1", "k3"]  # finished in both, apart: ours kept
    assert "different results; this store's kept: k1, k3" in plan.summary()
    # Study s now holds two bf16 runs (here) and one fp32 run (there): said; t is all fp32.
    assert plan.mixed_precision == ["s: bf16 x 2, fp32 x 1"]
    with Store(here, readonly=True) as store:
        runs = {r.key: r for r in store.runs(role=None)}
        assert store.statuses("t") == {"k4": "pending", "k5": "failed", "k6": "done"}
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
        assert store.lease_run("k1", str(tmp_path / "k1"), owner_id())  # this live process
    there = _store(tmp_path / "b.db", {"k1": "done"})
    [plan] = merge_stores([there], here)
    assert plan.live == ["k1"] and not plan.taken
    with Store(here, readonly=True) as store:
        assert store.statuses("s") == {"k1": "running"}


def test_a_study_that_declares_other_runs_is_refused_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    here = _store(tmp_path / "a.db", {"k1": "done", "k2": "pending"})
    before = _table(here)
    # Same runs, other text (each machine's data path, say): merged, this store's text kept.
    retitled = _store(
        tmp_path / "b.db", {"k1": "done", "k2": "done"}, spec={**SPEC, "description": "e"}
    )
    # The study file gained a run (a seed, say) before this store ran it.
    grown = _store(tmp_path / "c.db", {"k1": "done", "k2": "done", "k3": "done"})
    with pytest.raises(StoreError, match=r"study 's' declares different runs.*Nothing was written"):
        merge_stores([retitled, grown], here)
    assert _table(here) == before  # not even the first, compatible source landed
    bad = run_cli("results", "merge", str(grown), "--db", str(here), check=False)
    assert bad.returncode == 2 and "declares different runs" in bad.stderr
    assert "Traceback" not in bad.stderr
    [plan] = merge_stores([retitled], here)
    assert plan.taken == ["k2"] and plan.declarations_kept == ["s (description)"]
    assert "this store's kept): s (description)" in plan.summary()
    with Store(here, readonly=True) as store:
        assert store.study_spec("s") == SPEC


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


def test_data_path_maps_the_same_data_under_another_path_and_refuses_other_data(
    tmp_path: Path, jpeg_archive: Path
) -> None:
    """A lent GPU reads the JPEG set at ``.data/...``, this machine at ``../shared/...``: the
    same runs get other keys, so the merge refuses until ``--data-path`` maps the paths; each
    run's key is checked against the content here, so other data under the name is refused."""
    there_data = tmp_path / "gpu" / ".data" / "images.tar.gz"
    there_data.parent.mkdir(parents=True)
    shutil.copyfile(jpeg_archive, there_data)
    study = SPLIT_STUDY.replace('"synthetic:120"', "{data!r}").replace("[0.05, 0.01]", "[0.05]")
    stores = {}
    for name, data, seed in (("here", jpeg_archive, "0"), ("there", there_data, "1")):
        path = tmp_path / name / "split.toml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(study.format(data=str(data)).replace("split across", name))
        stores[name] = tmp_path / name / "runs.db"
        only = parse_filters([f"seed={seed}"])
        run_study(load_study(str(path)), stores[name], log=lambda m: None, only=only)
    here, there = stores["here"], stores["there"]
    with Store(here, readonly=True) as store:
        left = {r.key for r in store.runs("split") if r.status == "pending"}
    with Store(there, readonly=True) as store:
        [theirs] = [r for r in store.runs("split") if r.finished_ok]
    assert len(left) == 1 and theirs.key not in left  # the same run, another key

    bad = run_cli("results", "merge", str(there), "--db", str(here), check=False)
    assert bad.returncode == 2 and "--data-path THEIRS=OURS" in bad.stderr

    other = write_jpeg_archive(tmp_path / "other.tar.gz", per_class=13)
    mapped_wrong = f"{there_data}={other}"
    bad = run_cli(
        "results", "merge", str(there), "--db", str(here), "--data-path", mapped_wrong, check=False
    )
    assert bad.returncode == 2 and "whose content is not that of" in bad.stderr

    out = run_cli(
        "results",
        "merge",
        str(there),
        "--db",
        str(here),
        "--data-path",
        f"{there_data}={jpeg_archive}",
        "--json",
    )
    merge = last_json(out.stdout)["merges"][0]
    assert merge["runs_taken"] == 1 and merge["declarations_kept"] == [
        "split (base, description, source)"
    ]
    with Store(here, readonly=True) as store:
        runs = {r.key: r for r in store.runs("split")}
        assert store.status_counts("split")["done"] == 2
    [key] = left
    assert runs[key].result == theirs.result and runs[key].history == theirs.history
    assert runs[key].config.data == str(jpeg_archive)  # as if trained here
    assert runs[key].provenance == theirs.provenance  # where it really read its data, kept


def test_a_run_held_under_two_paths_merges_once(tmp_path: Path) -> None:
    """A source that trained one run on the data under both paths holds it twice; mapped to one
    key, it lands once, with one run's epochs."""
    there = _store(tmp_path / "b.db", {"ka": "done", "kb": "done"})

    def rekey(key: str, config: dict) -> tuple[str, dict]:
        return ("kb", {**config, "data": "ours"}) if key == "ka" else (key, config)

    [plan] = merge_stores([there], tmp_path / "a.db", rekey=rekey)
    assert plan.taken == ["kb"]
    with Store(tmp_path / "a.db", readonly=True) as store:
        [run] = store.runs("s")
        assert run.key == "kb" and [m["epoch"] for m in run.history] == [1, 2]


def test_a_malformed_or_missing_data_path_is_a_clear_error(tmp_path: Path) -> None:
    there = _store(tmp_path / "b.db", {"k1": "done"})
    here = tmp_path / "a.db"
    for value, says in (
        ("no-equals-sign", "--data-path expects THEIRS=OURS"),
        (f".data/x.tar.gz={tmp_path / 'missing.tar.gz'}", "no data at"),
    ):
        bad = run_cli("results", "merge", str(there), "--db", str(here), "--data-path", value,
                      check=False)  # fmt: skip
        assert bad.returncode == 2 and says in bad.stderr and "Traceback" not in bad.stderr
    assert not here.exists()  # nothing was created
