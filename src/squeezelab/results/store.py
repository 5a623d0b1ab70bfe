"""The results store: one SQLite file (WAL mode) holding studies, runs and per-epoch metrics.

Every write is one transaction, so a crash or kill never leaves a half-written row. The store
knows nothing of torch: runs arrive as plain dictionaries.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
STATUSES = ("pending", "running", "done", "diverged", "failed")
METRICS = (
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "test_loss",
    "test_acc",
    "lr",
    "epoch_s",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS studies (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    seed INTEGER NOT NULL,
    run_dir TEXT,
    val_acc REAL, val_loss REAL, test_acc REAL, test_loss REAL, train_loss REAL,
    epochs INTEGER, train_s REAL,
    started REAL, finished REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    recipe TEXT,
    error TEXT
);
CREATE TABLE IF NOT EXISTS study_runs (
    study TEXT NOT NULL REFERENCES studies(name),
    key TEXT NOT NULL REFERENCES runs(key),
    role TEXT NOT NULL DEFAULT 'run',
    PRIMARY KEY (study, key)
);
CREATE TABLE IF NOT EXISTS metrics (
    key TEXT NOT NULL REFERENCES runs(key),
    epoch INTEGER NOT NULL,
    train_loss REAL, train_acc REAL, val_loss REAL, val_acc REAL,
    test_loss REAL, test_acc REAL, lr REAL, epoch_s REAL,
    PRIMARY KEY (key, epoch)
);
"""


class StoreError(RuntimeError):
    """The store file is not a squeezelab store or cannot be opened."""


class Store:
    """A squeezelab results database."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            with self.transaction():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                self.conn.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,)
                )
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{self.path} is not a usable squeezelab store: {err}") from None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run the body as one IMMEDIATE transaction: all of it lands, or none."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # --- writing ----------------------------------------------------------------------

    def add_study(self, name: str, spec: dict[str, Any], runs: list[tuple[str, dict, str]]) -> None:
        """Record a study and its runs ``(key, config, role)``; existing runs are kept."""
        with self.transaction() as c:
            c.execute(
                "INSERT INTO studies VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET spec=excluded.spec",
                (name, json.dumps(spec, default=str), time.time()),
            )
            for key, config, role in runs:
                c.execute(
                    "INSERT OR IGNORE INTO runs (key, config, seed) VALUES (?, ?, ?)",
                    (key, json.dumps(config, sort_keys=True), int(config.get("seed", 0))),
                )
                c.execute(
                    "INSERT INTO study_runs VALUES (?, ?, ?) "
                    "ON CONFLICT DO UPDATE SET role=excluded.role",
                    (name, key, role),
                )

    def mark_running(self, key: str, run_dir: str) -> None:
        with self.transaction() as c:
            c.execute(
                "UPDATE runs SET status='running', run_dir=?, started=?, attempts=attempts+1, "
                "error=NULL WHERE key=?",
                (run_dir, time.time(), key),
            )

    def finish_run(
        self,
        key: str,
        result: dict[str, Any],
        history: list[dict[str, Any]],
        recipe: dict[str, Any] | None = None,
    ) -> None:
        """Store a finished run's result and every epoch's metrics in one transaction."""
        status = "diverged" if result.get("diverged") else "done"
        with self.transaction() as c:
            c.execute("DELETE FROM metrics WHERE key=?", (key,))
            c.executemany(
                f"INSERT INTO metrics (key, epoch, {', '.join(METRICS)}) "
                f"VALUES (?, ?, {', '.join('?' * len(METRICS))})",
                [(key, row["epoch"], *(row.get(m) for m in METRICS)) for row in history],
            )
            c.execute(
                "UPDATE runs SET status=?, val_acc=?, val_loss=?, test_acc=?, test_loss=?, "
                "train_loss=?, epochs=?, train_s=?, finished=?, recipe=?, error=NULL WHERE key=?",
                (
                    status,
                    result.get("val_acc"),
                    result.get("val_loss"),
                    result.get("test_acc"),
                    result.get("test_loss"),
                    result.get("train_loss"),
                    result.get("epochs"),
                    result.get("train_s"),
                    time.time(),
                    json.dumps(recipe) if recipe else None,
                    key,
                ),
            )

    def fail_run(self, key: str, error: str) -> None:
        with self.transaction() as c:
            c.execute(
                "UPDATE runs SET status='failed', error=?, finished=? WHERE key=?",
                (error, time.time(), key),
            )

    # --- reading ----------------------------------------------------------------------

    def studies(self) -> list[str]:
        return [r["name"] for r in self.conn.execute("SELECT name FROM studies ORDER BY created")]

    def study_spec(self, name: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT spec FROM studies WHERE name=?", (name,)).fetchone()
        return json.loads(row["spec"]) if row else None

    def runs(self, study: str | None = None, role: str | None = "run") -> list[dict[str, Any]]:
        """Return runs (optionally of one study and role) with their config parsed."""
        sql = "SELECT r.*, s.study, s.role FROM runs r JOIN study_runs s ON s.key = r.key"
        where, args = [], []
        if study is not None:
            where.append("s.study = ?")
            args.append(study)
        if role is not None:
            where.append("s.role = ?")
            args.append(role)
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = []
        for r in self.conn.execute(sql + " ORDER BY r.rowid", args):
            d = dict(r)
            d["config"] = json.loads(d["config"])
            rows.append(d)
        return rows

    def run(self, key: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM runs WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        d = dict(row)
        d["config"] = json.loads(d["config"])
        return d

    def metrics(self, key: str) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT * FROM metrics WHERE key=? ORDER BY epoch", (key,))
        return [dict(r) for r in rows]

    def status_counts(self, study: str) -> dict[str, int]:
        """Count a study's runs by status (``left`` = pending, or never started)."""
        counts = dict.fromkeys(("done", "running", "failed", "diverged", "left"), 0)
        for r in self.conn.execute(
            "SELECT r.status, COUNT(*) n FROM runs r JOIN study_runs s ON s.key=r.key "
            "WHERE s.study=? GROUP BY r.status",
            (study,),
        ):
            counts["left" if r["status"] == "pending" else r["status"]] += r["n"]
        return counts

    def tidy(self) -> list[dict[str, Any]]:
        """Return one flat row per (study, run): config fields, results and status."""
        out = []
        for r in self.runs(role=None):
            row = {"study": r["study"], "role": r["role"], "key": r["key"], "status": r["status"]}
            row.update(r["config"])
            for k in ("val_acc", "val_loss", "test_acc", "test_loss", "train_loss", "epochs",
                      "train_s", "error"):  # fmt: skip
                row[k] = r[k]
            out.append(row)
        return out
