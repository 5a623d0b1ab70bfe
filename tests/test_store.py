"""The store under hostile or careless use: damaged and foreign files, read-only readers,
older schemas, load-timed epochs, and processes racing to create it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from squeezelab.results import Store, StoreError
from squeezelab.studies import parse_study, run_study

from .conftest import run_cli
from .test_studies import STUDY


@pytest.mark.parametrize("kind", ["random", "truncated", "directory", "foreign"])
def test_bad_store_files_are_one_line_errors(tmp_path: Path, kind: str) -> None:
    db = tmp_path / "s.db"
    if kind == "random":
        db.write_bytes(bytes(range(256)) * 64)
    elif kind == "truncated":
        run_study(parse_study(STUDY.replace("seeds = [0, 1]", "seeds = [0]"), "t"), db,
                  log=lambda m: None)  # fmt: skip
        db.write_bytes(db.read_bytes()[:3000])
    elif kind == "directory":
        db.mkdir()
    else:
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE invoices (id INTEGER)")
    before = db.read_bytes() if db.is_file() else None
    good = tmp_path / "good.db"  # merged into the bad store, and the bad store merged into it
    good.write_bytes(b"")
    Store(good).close()
    kept = good.read_bytes()
    for args in (
        ["study", "status", "--db", str(db)],
        ["results", "export", "--db", str(db)],
        ["report", "--out", "r", "--db", str(db)],
        ["results", "merge", str(good), "--db", str(db)],
        ["results", "merge", str(db), "--db", str(good)],
    ):
        proc = run_cli(*args, check=False)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
        assert str(db) in proc.stderr
        if kind == "directory":
            assert "is a directory, not a squeezelab store file" in proc.stderr, args
    if before is not None:
        assert db.read_bytes() == before  # nothing stored is touched
    assert good.read_bytes() == kept
    if kind == "foreign":
        with pytest.raises(StoreError, match="another program"):
            Store(db)


def test_store_readers_never_write(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    run_study(parse_study(STUDY.replace("seeds = [0, 1]", "seeds = [0]"), "t"), db,
              log=lambda m: None)  # fmt: skip
    before = db.read_bytes()
    run_cli("study", "status", "--db", str(db))
    run_cli("results", "export", "--db", str(db))
    run_cli("report", "--db", str(db), "--out", str(tmp_path / "r"))
    assert db.read_bytes() == before
    with Store(db, readonly=True) as store, pytest.raises(sqlite3.OperationalError, match="read"):
        store.conn.execute("DELETE FROM runs")


def test_schema_1_store_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    run_study(parse_study(STUDY.replace("seeds = [0, 1]", "seeds = [0]"), "t"), db,
              log=lambda m: None)  # fmt: skip
    with sqlite3.connect(db) as conn:  # back to schema 1: no claim columns, no load
        conn.execute("ALTER TABLE runs DROP COLUMN owner")
        conn.execute("ALTER TABLE runs DROP COLUMN heartbeat")
        conn.execute("ALTER TABLE metrics DROP COLUMN load")
        conn.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    with Store(db, readonly=True) as store:  # read as it is: no load recorded
        runs = store.runs("t")
        assert len(runs) == 4 and all(row["load"] is None for r in runs for row in r.history)
    other = tmp_path / "other.db"  # merged from, read-only: its epochs come without load
    assert run_cli("results", "merge", str(db), "--db", str(other)).returncode == 0
    with Store(other, readonly=True) as store:
        assert all(row["load"] is None for r in store.runs("t") for row in r.history)
    with Store(db) as store:
        assert store.status_counts("t")["done"] == 4
        columns = {r[1] for r in store.conn.execute("PRAGMA table_info(runs)")}
        assert {"owner", "heartbeat"} <= columns
        assert "load" in {r[1] for r in store.conn.execute("PRAGMA table_info(metrics)")}


def test_table_1_names_the_load_its_epochs_were_timed_under(tmp_path: Path) -> None:
    from squeezelab.analysis import build_report

    db = tmp_path / "s.db"
    run_study(parse_study(STUDY.replace("seeds = [0, 1]", "seeds = [0]"), "t"), db,
              log=lambda m: None)  # fmt: skip
    with Store(db) as store:
        loads = [row.get("load") for r in store.runs("t") for row in r.history]
        assert loads and all(isinstance(x, float) for x in loads)  # recorded, stored
        store.conn.execute("UPDATE metrics SET load = 9.0")  # as if other jobs shared the cores
    build_report(db, tmp_path / "r")
    md = (tmp_path / "r" / "report.md").read_text()
    table = md.split("## Table 1: training time")[1].split("\n## ")[0]
    assert "9.0 on" in table and "(busy: not this device's speed)" in table
    assert "timed on a busy machine" in table


def _create_store(path: str, barrier, results) -> None:
    from squeezelab.results import Store

    barrier.wait()
    try:
        with Store(path) as store:
            store.add_study("s", {}, [("k", {"seed": 0}, "run")])
        results.put("ok")
    except Exception as err:  # reported to the parent
        results.put(repr(err))


def test_processes_creating_one_store_at_once_both_succeed(tmp_path: Path) -> None:
    """Two studies started together on a new store: the loser of the first lock waits."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    outcomes = []
    for i in range(10):
        barrier, results = ctx.Barrier(2), ctx.Queue()
        path = str(tmp_path / f"s{i}.db")
        procs = [ctx.Process(target=_create_store, args=(path, barrier, results)) for _ in "ab"]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
        outcomes += [results.get(timeout=5), results.get(timeout=5)]
    assert outcomes == ["ok"] * 20
