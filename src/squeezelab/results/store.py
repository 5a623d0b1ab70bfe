"""The results store: one SQLite file (WAL mode) holding studies, runs and per-epoch metrics.

Every write is one transaction, so a crash or kill never leaves a half-written row. The store
knows nothing of torch: runs arrive as plain dictionaries.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import SqueezelabError
from .records import FINISHED, RESULT_FIELDS, Fields, RunRecord, RunScore

# 2: runs.owner and runs.heartbeat (leases by concurrent studies); 3: metrics.load (the
# machine's load average as each epoch ended); 4: looks (a sequential study's decisions)
SCHEMA_VERSION = 4
STATUSES = ("pending", "running", "done", "diverged", "failed")
METRIC_COLUMNS = (
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "test_loss",
    "test_acc",
    "lr",
    "epoch_s",
    "load",
)

# runs.recipe holds a run's provenance record (JSON: versions, device, precision, images);
# the column keeps the name it had before "recipe" came to mean a named training recipe.
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
    test_loss REAL, test_acc REAL, lr REAL, epoch_s REAL, load REAL,
    PRIMARY KEY (key, epoch)
);
CREATE TABLE IF NOT EXISTS looks (
    study TEXT NOT NULL,
    look INTEGER NOT NULL,
    taken REAL NOT NULL,
    seeds INTEGER NOT NULL,
    fraction REAL NOT NULL,
    spending TEXT NOT NULL,
    claim TEXT NOT NULL,
    rule TEXT NOT NULL,
    estimate REAL, p REAL, level REAL, p_contra REAL, contra_level REAL,
    alpha_spent REAL,
    verdict TEXT NOT NULL,
    decided INTEGER NOT NULL,
    runs INTEGER NOT NULL,
    run_epochs REAL NOT NULL,
    PRIMARY KEY (study, look, claim, rule)
);
"""
LOOK_COLUMNS = (
    "study", "look", "taken", "seeds", "fraction", "spending", "claim", "rule", "estimate", "p",
    "level", "p_contra", "contra_level", "alpha_spent", "verdict", "decided", "runs", "run_epochs",
)  # fmt: skip


# File systems where SQLite's locks are not to be trusted with several writers (its own FAQ):
# a store written there by a study and a merge at once could be corrupted.
NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "fuse.sshfs", "sshfs", "lustre", "gpfs",
    "beegfs", "fuse.glusterfs", "glusterfs", "ceph", "fuse.ceph", "afs", "fuse.s3fs",
})  # fmt: skip
ALLOW_NETWORK = "SQUEEZELAB_STORE_ON_NETWORK"  # =1: the user vouches that one process writes


def filesystem_of(path: Path, mounts: str = "/proc/mounts") -> str | None:
    """The type of the file system holding ``path`` (Linux's mount table; None elsewhere)."""
    try:
        table = Path(mounts).read_text().splitlines()
    except OSError:
        return None
    target = str(path.resolve())
    best, kind = "", None
    for line in table:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, parts[2]
    return kind


def refuse_network_store(path: Path) -> None:
    """The store has one writer, the driver; on a network file system that cannot be made
    safe, so a store there is refused (run directories may live there: ``--runs-dir``)."""
    kind = filesystem_of(path.parent)
    if kind in NETWORK_FILESYSTEMS and os.environ.get(ALLOW_NETWORK) != "1":
        raise StoreError(
            f"{path} is on a network file system ({kind}): SQLite's locking is not safe there. "
            "Keep the store on the driver's local disk (run directories can stay on shared "
            f"storage with --runs-dir), or set {ALLOW_NETWORK}=1 if only this process writes it"
        )


def insert_looks(conn: sqlite3.Connection, study: str, rows: list[dict[str, Any]]) -> None:
    """Write look rows (each names its look) inside the caller's transaction."""
    conn.executemany(
        f"INSERT INTO looks ({', '.join(LOOK_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(LOOK_COLUMNS))})",
        [tuple({**row, "study": study}.get(k) for k in LOOK_COLUMNS) for row in rows],
    )


def metric_columns(conn: sqlite3.Connection) -> set[str]:
    """The columns a store's metrics table has (an older store may lack the newest)."""
    return {r[1] for r in conn.execute("PRAGMA table_info(metrics)")}


def metric_select(conn: sqlite3.Connection) -> str:
    """``key, epoch`` and every metric column, NULL for a column the store lacks."""
    have = metric_columns(conn)
    columns = (m if m in have else f"NULL AS {m}" for m in METRIC_COLUMNS)
    return ", ".join(("key", "epoch", *columns))


OPEN_TIMEOUT_S = 60.0  # how long opening waits for another process creating the same store
STALE_S = 120.0  # a lease whose heartbeat is older than this belongs to a dead process
BEAT_S = 20.0


def owner_id() -> str:
    """This process, as it signs the runs it leases: host, pid and a random token."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _alive(row: Any) -> bool:
    """Whether the owner of a 'running' row is alive: same host and pid alive, or beating."""
    owner, beat = row["owner"], row["heartbeat"]
    if not owner or beat is None:
        return False  # marked running before leases existed: its process is gone
    host, _, rest = owner.partition(":")
    if host == socket.gethostname():
        try:
            os.kill(int(rest.split(":")[0]), 0)
        except ProcessLookupError:
            return False
        except (PermissionError, ValueError):
            pass
    return time.time() - beat < STALE_S


class Heartbeat:
    """A thread that keeps this process's leases alive while their runs train."""

    def __init__(self, db: str | Path, owner: str) -> None:
        self.db, self.owner = db, owner
        self.keys: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="squeezelab-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        store = Store(self.db)  # its own connection: sqlite3 connections stay in one thread
        try:
            while not self._stop.wait(BEAT_S):
                if self.keys:
                    store.beat(sorted(self.keys), self.owner)
        finally:
            store.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """Open read-only; in a read-only folder, where SQLite cannot add its WAL files, as
    immutable."""
    uri = path.resolve().as_uri()
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("SELECT name FROM sqlite_master").fetchall()
        return conn
    except sqlite3.OperationalError:
        conn.close()
        return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None)


class StoreError(SqueezelabError, RuntimeError):
    """The store file is not a squeezelab store or cannot be opened."""


def _full(err: sqlite3.OperationalError) -> bool:
    """A write SQLite could not make for want of space (the store's disk or its temp space)."""
    text = str(err).lower()
    return any(w in text for w in ("disk is full", "disk i/o error", "readonly", "read-only"))


class Store:
    """A squeezelab results database; ``readonly`` opens an existing one without writing."""

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a directory, not a squeezelab store file")
        if readonly and not self.path.is_file():
            raise StoreError(f"no store at {self.path}: run a study first, or pass --db PATH")
        deadline = time.monotonic() + OPEN_TIMEOUT_S
        while True:
            try:
                self._open(readonly)
                return
            except sqlite3.OperationalError as err:
                # Two processes creating one store race for its first lock; switching to WAL
                # does not wait for a lock, so the loser retries until the winner is done.
                if getattr(self, "conn", None) is not None:
                    self.conn.close()
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise StoreError(
                        f"{self.path} is not a usable squeezelab store: {err}"
                    ) from None
                time.sleep(0.05)
            except sqlite3.DatabaseError as err:
                raise StoreError(f"{self.path} is not a usable squeezelab store: {err}") from None

    def _open(self, readonly: bool) -> None:
        if readonly:
            self.conn = _connect_readonly(self.path)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            refuse_network_store(self.path)
            self.conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self._check_ours()
        if not readonly:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self._create()

    def _check_ours(self) -> None:
        """Refuse another program's SQLite file instead of adding tables to it."""
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master")}
        if tables and "meta" not in tables:
            raise StoreError(
                f"{self.path} is an SQLite file of another program (tables: "
                f"{', '.join(sorted(tables))}), not a squeezelab store"
            )
        if "meta" in tables:
            row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            try:
                version = int(row[0]) if row is not None else None
            except (TypeError, ValueError):
                raise StoreError(
                    f"{self.path}: store schema version {row[0]!r} is not a number: the store's "
                    "meta table is damaged"
                ) from None
            if version is None or version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: store schema {row[0] if row else 'unknown'}; this squeezelab "
                    f"reads up to {SCHEMA_VERSION} (upgrade squeezelab)"
                )

    def _create(self) -> None:
        with self.transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self.conn.execute(statement)
            columns = {r[1] for r in self.conn.execute("PRAGMA table_info(runs)")}
            for name, kind in (("owner", "TEXT"), ("heartbeat", "REAL")):  # schema 1 -> 2
                if name not in columns:
                    self.conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
            if "load" not in metric_columns(self.conn):  # schema 2 -> 3
                self.conn.execute("ALTER TABLE metrics ADD COLUMN load REAL")
            self.conn.execute(
                "INSERT INTO meta VALUES ('schema_version', ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (SCHEMA_VERSION,),
            )

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
            self.conn.execute("COMMIT")
        except BaseException as err:
            with contextlib.suppress(sqlite3.Error):  # a failed COMMIT may have ended it
                self.conn.execute("ROLLBACK")
            if isinstance(err, sqlite3.OperationalError) and _full(err):
                raise StoreError(
                    f"could not write the store {self.path}: {err} (nothing of this change was "
                    "written; what it held before is intact)"
                ) from err
            raise

    # --- writing ----------------------------------------------------------------------

    def add_study(self, name: str, spec: dict[str, Any], runs: list[tuple[str, dict, str]]) -> None:
        """Record a study and its runs ``(key, config, role)``; existing runs keep their status
        and results, and take the config as given (a run stored by an older squeezelab lacks
        the fields added since, at their defaults: same key, same run)."""
        with self.transaction() as c:
            c.execute(
                "INSERT INTO studies VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET spec=excluded.spec",
                (name, json.dumps(spec, default=str), time.time()),
            )
            for key, config, role in runs:
                c.execute(
                    "INSERT INTO runs (key, config, seed) VALUES (?, ?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET config=excluded.config",
                    (key, json.dumps(config, sort_keys=True), int(config.get("seed", 0))),
                )
                c.execute(
                    "INSERT INTO study_runs VALUES (?, ?, ?) "
                    "ON CONFLICT DO UPDATE SET role=excluded.role",
                    (name, key, role),
                )

    def lease_run(self, key: str, run_dir: str, owner: str) -> bool:
        """Atomically take a run to train: True when it was free (pending, failed, or
        running under an owner that died or stopped beating); False when it is finished or
        another live process holds it."""
        with self.transaction() as c:
            row = c.execute(
                "SELECT status, owner, heartbeat FROM runs WHERE key=?", (key,)
            ).fetchone()
            if row is None or row["status"] in FINISHED:
                return False
            if row["status"] == "running" and row["owner"] != owner and _alive(row):
                return False
            c.execute(
                "UPDATE runs SET status='running', run_dir=?, started=?, owner=?, heartbeat=?, "
                "attempts=attempts+1, error=NULL WHERE key=?",
                (run_dir, time.time(), owner, time.time(), key),
            )
            return True

    def beat(self, keys: list[str], owner: str) -> None:
        """Refresh the heartbeat of the runs ``owner`` is training."""
        with self.transaction() as c:
            c.executemany(
                "UPDATE runs SET heartbeat=? WHERE key=? AND owner=? AND status='running'",
                [(time.time(), k, owner) for k in keys],
            )

    def finish_run(
        self,
        key: str,
        result: dict[str, Any],
        history: list[dict[str, Any]],
        provenance: dict[str, Any] | None = None,
    ) -> None:
        """Store a finished run's result and every epoch's metrics in one transaction."""
        status = "diverged" if result.get("diverged") else "done"
        with self.transaction() as c:
            c.execute("DELETE FROM metrics WHERE key=?", (key,))
            c.executemany(
                f"INSERT INTO metrics (key, epoch, {', '.join(METRIC_COLUMNS)}) "
                f"VALUES (?, ?, {', '.join('?' * len(METRIC_COLUMNS))})",
                [(key, row["epoch"], *(row.get(m) for m in METRIC_COLUMNS)) for row in history],
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
                    json.dumps(provenance) if provenance else None,
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

    def runs(self, study: str | None = None, role: str | None = "run") -> list[RunRecord]:
        """Return runs (optionally of one study and role) as typed records, each with its
        per-epoch history: one query for the runs, one for all their metrics."""
        where, args = [], []
        if study is not None:
            where.append("s.study = ?")
            args.append(study)
        if role is not None:
            where.append("s.role = ?")
            args.append(role)
        cond = " WHERE " + " AND ".join(where) if where else ""
        rows = self.conn.execute(
            "SELECT r.*, s.study, s.role FROM runs r JOIN study_runs s ON s.key = r.key"
            + cond
            + " ORDER BY r.rowid",
            args,
        ).fetchall()
        history: dict[str, list[dict[str, Any]]] = {}
        for m in self.conn.execute(  # a store opened read-only may predate a column: NULL
            f"SELECT {metric_select(self.conn)} FROM metrics "
            f"WHERE key IN (SELECT s.key FROM study_runs s{cond}) ORDER BY key, epoch",
            args,
        ):
            history.setdefault(m["key"], []).append({k: m[k] for k in ("epoch", *METRIC_COLUMNS)})
        return [_record(row, history.get(row["key"], [])) for row in rows]

    def stored_statuses(self) -> dict[str, str]:
        """Every stored run's status, by key, whichever studies it serves."""
        return {r["key"]: r["status"] for r in self.conn.execute("SELECT key, status FROM runs")}

    def statuses(self, study: str) -> dict[str, str]:
        """Each of a study's runs' status, by key (no results or histories read)."""
        rows = self.conn.execute(
            "SELECT r.key, r.status FROM runs r JOIN study_runs s ON s.key = r.key "
            "WHERE s.study = ?",
            (study,),
        )
        return {r["key"]: r["status"] for r in rows}

    def record_look(self, study: str, look: int, rows: list[dict[str, Any]]) -> None:
        """Record one look of a sequential study, whole or not at all; a look already
        recorded is refused (a look is taken once: resuming goes on from the last)."""
        with self.transaction() as c:
            if c.execute("SELECT 1 FROM looks WHERE study=? AND look=?", (study, look)).fetchone():
                raise StoreError(f"{self.path}: look {look} of {study!r} is already recorded")
            insert_looks(c, study, [{**row, "look": look} for row in rows])

    def looks(self, study: str) -> list[dict[str, Any]]:
        """A sequential study's recorded looks, one row per claim and rule, in look order."""
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master")}
        if "looks" not in tables:  # an older store, opened read-only
            return []
        rows = self.conn.execute(
            "SELECT * FROM looks WHERE study=? ORDER BY look, claim, rule", (study,)
        )
        return [dict(r) for r in rows]

    def status_counts(self, study: str) -> dict[str, int]:
        """Count a study's runs by status (``left``: never started; ``interrupted``: marked
        running by a process that died or stopped beating)."""
        counts = dict.fromkeys(("done", "running", "interrupted", "failed", "diverged", "left"), 0)
        for r in self.conn.execute(
            "SELECT r.status, r.owner, r.heartbeat FROM runs r JOIN study_runs s ON s.key=r.key "
            "WHERE s.study=?",
            (study,),
        ):
            status = r["status"]
            if status == "running" and not _alive(r):
                status = "interrupted"
            counts["left" if status == "pending" else status] += 1
        return counts


def _record(row: sqlite3.Row, history: list[dict[str, Any]]) -> RunRecord:
    d = dict(row)
    return RunRecord(
        key=d["key"],
        config=Fields(json.loads(d["config"])),
        status=d["status"],
        result=RunScore(**{k: d[k] for k in RESULT_FIELDS}),
        history=tuple(history),
        provenance=json.loads(d["recipe"]) if d["recipe"] else None,
        study=d["study"],
        role=d["role"],
        run_dir=d["run_dir"],
        attempts=d["attempts"],
        error=d["error"],
        owner=d.get("owner"),  # a schema-1 store read as it is has no leases
        heartbeat=d.get("heartbeat"),
        started=d["started"],
        finished=d["finished"],
    )
