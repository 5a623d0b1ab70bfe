"""Run a study against a store: resolve its points, skip finished runs, execute the rest.

Every run is keyed by the hash of its resolved config and lives in ``RUNS/<key>/``. Killing
the command at any moment and starting it again loses at most the epoch in progress (runs
resume from their checkpoint) and never duplicates a run (the key is the store's primary key).
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..analysis.selection import best_runs, num_classes_of, select_best
from ..data import check_source
from ..data.sources import content_digest
from ..models.complexity import complexity_of
from ..results import RunRecord, Store, StoreError
from ..results.merge import Rekey
from ..results.records import FINISHED, left_chance
from ..results.store import Heartbeat, owner_id
from ..storage import RunsAt, Storage, is_url, join
from ..training.config import ConfigError, RunConfig, from_dict
from ..training.layout import MODEL
from .executors import Executor, RunTask, make_executor
from .live import LiveView
from .progress import Progress, run_label
from .spec import BestOf, StudySpec, select_runs

Log = Callable[[str], None]


def run_key(cfg: RunConfig) -> str:
    """A run's identity in the store: its config's hash and, when ``data`` is a file or a
    folder, that data's content hash (a data set replaced under the same path is new data).
    Named sources (cifar10, synthetic) keep the config's hash alone."""
    path = Path(cfg.data)
    if not path.exists():
        return cfg.key()
    return _with_data(cfg.key(), content_digest(path))


def _with_data(config_key: str, digest: str) -> str:
    return hashlib.sha256(f"{config_key}:{digest}".encode()).hexdigest()[:16]


def data_path_rekey(paths: dict[str, str]) -> Rekey:
    """For ``results merge --data-path THEIRS=OURS``: a run another store trained on data at
    THEIRS gets the config and key it has on OURS here, once its own key proves that THEIRS
    held OURS's content (the key hashes the data's content with the config, so a run on other
    data is refused by name). Runs on other data sources keep their keys."""
    digests = {}
    for theirs, ours in paths.items():
        if not Path(ours).exists():
            raise ConfigError(f"--data-path {theirs}={ours}: no data at {ours} on this machine")
        digests[theirs] = content_digest(Path(ours))

    def rekey(key: str, config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        theirs = config.get("data")
        if theirs not in digests:
            return key, config
        cfg = from_dict(config, f"stored run {key}")
        if _with_data(cfg.key(), digests[theirs]) != key:
            raise StoreError(
                f"run {key} was trained on data at {theirs} whose content is not that of "
                f"{paths[theirs]} here (its key does not match): --data-path maps only the "
                "same data under another path; nothing was written"
            )
        here = cfg.replace(data=paths[theirs])
        return run_key(here), here.to_dict()

    return rekey


def default_runs_dir(db: str | Path) -> Path:
    """Run directories live beside the store: ``<db dir>/runs``."""
    return Path(db).resolve().parent / "runs"


def best_points(
    store: Store,
    best: BestOf,
    fallback: tuple[dict[str, Any], ...] = (),
    log: Log | None = None,
) -> list[dict[str, Any]]:
    """Return the best point of a finished study per group (validation accuracy only).

    A group none of whose cells left chance has no winner: its points come from
    ``fallback`` (the study file's ``[[points]]`` for that group) when there are any, and
    the message says so either way.
    """
    runs = store.runs(best.study)
    chance = 100.0 / num_classes_of(r.provenance for r in runs)
    out = []
    for point, score, _ in select_best(runs, best.group_by, best.fields):
        if left_chance(score, chance):
            out.append(point)
            continue
        group = {k: point[k] for k in best.group_by}
        own = [p for p in fallback if all(p.get(k) == v for k, v in group.items())]
        if log is not None:
            log(
                f"{best.study}: no cell of {run_label(group, list(group))} left chance (best "
                f"validation accuracy {score:.1f}%, chance {chance:g}%): no winner; "
                + ("the study file's point is used" if own else "its first cell is kept")
            )
        out.extend(own or [point])
    return out


def plan(
    spec: StudySpec, store: Store, at: RunsAt, log: Log
) -> tuple[list[RunConfig], list[RunConfig], dict[str, Any]]:
    """Resolve a study into (source runs, runs, notes) without running anything; source
    models (a transfer study's pretraining) get their run folders in ``at``."""
    notes: dict[str, Any] = {}
    points = None
    if spec.best_of is not None:
        found = best_points(store, spec.best_of, spec.points, log)
        if found:
            points = [{k: v for k, v in p.items() if k not in spec.base} for p in found]
            notes["points_from"] = f"best of study {spec.best_of.study!r} ({spec.best_of.metric})"
            log(f"{spec.name}: points from the best runs of {spec.best_of.study!r}: {found}")
        elif spec.points:
            notes["points_from"] = "the study file's [[points]] (no finished best_of study)"
            log(
                f"{spec.name}: study {spec.best_of.study!r} has no finished runs in this store: "
                "the study file's [[points]] are used"
            )
        else:  # nothing to take the points from: the [base] point alone is not what was asked
            raise no_points(spec, len(store.runs(spec.best_of.study)))
    runs = spec.expand(points)
    sources: list[RunConfig] = []
    if any(r.init == "imagenet" for r in runs):
        runs, sources, notes["transfer_source"] = _resolve_imagenet(spec, runs, at, log)
    return sources, runs, notes


def _resolve_imagenet(
    spec: StudySpec, runs: list[RunConfig], at: RunsAt, log: Log
) -> tuple[list[RunConfig], list[RunConfig], str]:
    from ..training.checkpoint import CheckpointError
    from ..training.transfer import imagenet_weights

    models = sorted({r.model for r in runs if r.init == "imagenet"})
    try:
        for m in models:
            imagenet_weights(m)
        return runs, [], "ImageNet (torchvision's published weights)"
    except CheckpointError as err:
        if spec.pretrain is None:
            raise ConfigError(
                f"study {spec.name!r} needs ImageNet weights: {err}; or pass --set init=PATH.pth"
            ) from None
    sources, replace = [], {}
    for m in models:
        base = {k: v for k, v in spec.base.items() if k in ("batch_norm", "image_size")}
        src = from_dict({**base, **spec.pretrain, "model": m}, f"{spec.source} [pretrain]")
        sources.append(src)
        replace[m] = at.run(run_key(src))
    desc = f"pretrained here on {spec.pretrain.get('data')} (ImageNet weights unavailable offline)"
    log(f"{spec.name}: {desc}")
    swapped = [r.replace(init=replace[r.model]) if r.init == "imagenet" else r for r in runs]
    return swapped, sources, desc


def no_points(spec: StudySpec, held: int) -> ConfigError:
    """The error for a [best_of] study with nothing to take its points from."""
    study = spec.best_of.study if spec.best_of else "?"
    state = f"holds {held} run(s) of it, none finished" if held else "holds none of it"
    return ConfigError(
        f"{spec.name}: [best_of] takes its points from study {study!r}, and this store "
        f"{state}; the study file gives no [[points]] to fall back on: run {study!r} first "
        "(or add [[points]])"
    )


def preflight(runs: list[RunConfig], at: RunsAt, data_dir: str | None) -> None:
    """Check once, before any run is registered or trained, what every run will read: each
    distinct data source and each starting-weights path (other than ImageNet's and the
    source models this study trains itself). One line names the first problem."""
    for data in sorted({c.data for c in runs}):
        check_source(data, data_dir)
    for init in sorted({c.init for c in runs if c.init and c.init != "imagenet"}):
        if is_url(init):  # in storage: a source model this study trains, or read there
            continue
        path = Path(init).expanduser()
        if not path.exists() and not at.holds(path):
            raise ConfigError(f"init {init!r}: no such file or run directory")


def run_study(
    spec: StudySpec,
    db: str | Path,
    *,
    executor: str = "local",
    workers: int = 1,
    runs_per_device: int | None = None,
    address: str | None = None,
    data_dir: str | None = None,
    runs_dir: str | Path | None = None,
    log: Log | None = None,
    keep_weights: bool = False,
    only: dict[str, tuple[Any, ...]] | None = None,
    keep: Callable[[RunConfig], bool] | None = None,
    live: str | Path | None = None,
    storage: str | None = None,
) -> dict[str, int]:
    """Run every unfinished run of ``spec``; return the study's status counts.

    ``only`` (field -> values) runs the part of the study whose runs match, leaving the rest
    registered for a later call; source models always run (the runs may start from them).
    Unless ``keep_weights``, final weights are kept only where a later step needs them: the
    source models (transfer) and the best cell of each model (validation accuracy).
    ``keep`` (a sequential study's next look) declares only the runs it accepts: the others
    are neither registered nor run. ``live``: keep the live page (``studies.live``) there.
    ``storage`` (a folder or an fsspec URL, instead of ``runs_dir``): runs train in each
    node's scratch and their folders go to ``STORAGE/KEY`` as they train (``squeezelab.storage``).
    """
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    if storage and runs_dir:
        raise ConfigError("give --storage or --runs-dir, not both: runs go to one place")
    at = RunsAt.of(storage, runs_dir or default_runs_dir(db))
    preflight(spec.expand(), at, data_dir)  # before the store is even opened
    with Store(db) as store:
        sources, runs, notes = plan(spec, store, at, log)
        if keep is not None:
            runs = [c for c in runs if keep(c)]
        preflight(sources, at, data_dir)  # what planning added: source models
        spec_dict = {**dataclasses.asdict(spec), "notes": notes}
        spec_dict.pop("raw")  # the parsed fields say it all
        # Each run's key once (it may hash the data): (key, config) per stage.
        stages = [[(run_key(c), c) for c in stage] for stage in (sources, runs)]
        # --only is checked before anything trains (a source model included).
        chosen = {id(c) for c in select_runs(runs, only, spec.name)} if only else None
        entries = [
            (key, c.to_dict(), role)
            for stage, role in zip(stages, ("source", "run"))
            for key, c in stage
        ]
        before = set(store.statuses(spec.name))  # keys only: no results or histories read
        store.add_study(spec.name, spec_dict, entries)
        other = before - {key for key, _, _ in entries}
        if other:  # not silent: this call and an earlier one declare the study differently
            log(
                f"{spec.name}: this store already holds {len(other)} run(s) of the study that "
                "this call does not declare (another --set, data path or study file): both are "
                "kept under one name and reported apart by their protocol settings; `results "
                "merge` compares the union with another store's declaration"
            )
        owner = owner_id()
        beat = Heartbeat(db, owner)
        view = LiveView(db, live, [spec.name]) if live else None
        try:
            runner = None
            # Source models first, and always: the runs start from them.
            for stage, role in zip(stages, ("source", "run")):
                status = store.statuses(spec.name)
                todo = [(k, c) for k, c in stage if status.get(k) not in FINISHED]
                if not stage:
                    continue
                done, later = len(stage) - len(todo), ""
                if chosen is not None and role == "run":
                    kept = [(k, c) for k, c in todo if id(c) in chosen]
                    later = f" ({len(todo) - len(kept)} more left for later: not in --only)"
                    todo = kept
                log(
                    f"{spec.name}: {len(stage)} runs, {done} already finished, "
                    f"{len(todo)} to run{later}"
                )
                if todo:
                    runner = runner or make_executor(executor, workers, address, runs_per_device)
                    lease = RunLease(store, beat, owner, log)
                    _execute(store, runner, todo, at, data_dir, log, spec, lease, view)
        finally:
            beat.close()
            if view is not None:
                view.close()
        if not keep_weights:
            _drop_weights(store, spec.name, at)
        return store.status_counts(spec.name)


@dataclasses.dataclass
class RunLease:
    """Take runs in the store before training them, so that concurrent studies share work."""

    store: Store
    beat: Heartbeat
    owner: str
    log: Log

    def take(self, task: RunTask) -> bool:
        if not self.store.lease_run(task.key, task.run_dir, self.owner):
            self.log(f"run {task.key}: finished or being trained by another process; skipped")
            return False
        self.beat.keys.add(task.key)
        return True

    def release(self, key: str) -> None:
        self.beat.keys.discard(key)


def _varying(spec: StudySpec) -> list[str]:
    """The fields that tell a study's runs apart, for progress lines."""
    fields = {k for k, v in spec.axes.items() if len(v) > 1}
    for listed in (spec.points, spec.variants):
        fields |= {k for p in listed for k in p if len({str(q.get(k)) for q in listed}) > 1}
    return sorted(fields) + (["seed"] if len(spec.seeds) > 1 else [])


DATA = ".data"  # storage's folder of data sets, one per content hash: STORAGE/.data/HASH/NAME


def ship_data(store: Storage, sources: set[str], log: Log) -> dict[str, str]:
    """Put each data file the runs read into storage once (``STORAGE/.data/HASH/NAME``), so
    that a node without the driver's path fetches it; return source -> its URL there. A data
    folder is not copied (its hash holds file times, which a copy changes): it must sit at
    the same path on every node, which ``doctor --data`` checks."""
    out = {}
    for spec in sorted(sources):
        path = Path(spec).expanduser()
        if not path.exists():  # a named source: cifar10 downloads on each node
            continue
        if path.is_dir():
            log(
                f"data {spec}: a folder is not copied to storage; every node must hold it at "
                "this path (squeezelab doctor --data checks), or pass it as an archive"
            )
            continue
        digest = content_digest(path)
        if not store.exists(join(DATA, digest), path.name):
            log(f"data {spec}: copying it to storage once, for nodes that lack it")
            store.put(path, join(DATA, digest), path.name)
        out[spec] = join(store.url, DATA, digest, path.name)
    return out


def _drop_weights(store: Store, study: str, at: RunsAt) -> None:
    """Delete final weights no later step reads: keep one run per model, its best cell's best."""
    runs = [r for r in store.runs(study) if r.status == "done"]
    best: dict[str, RunRecord] = {}
    for r in best_runs(runs):
        model = r.config.model
        if model not in best or (r.result.val_acc or 0.0) > (best[model].result.val_acc or 0.0):
            best[model] = r
    keep = {r.key for r in best.values()}
    for r in runs:
        if r.key not in keep:
            at.drop(r.key, MODEL)


FULL_SET = 50_000  # stands in for the images of a run without train_subset (CIFAR's size)


def work_of(config: RunConfig) -> float:
    """A run's training cost, for ordering and ETAs: forward MACs x images x epochs.

    Only ratios between a study's runs matter; a model that cannot run counts as 1 MAC.
    """
    _, macs = complexity_of(config.to_dict())
    return float(max(macs, 1)) * (config.train_subset or FULL_SET) * config.epochs


def _execute(
    store: Store,
    runner: Executor,
    todo: list[tuple[str, RunConfig]],
    at: RunsAt,
    data_dir: str | None,
    log: Callable[[str], None],
    spec: StudySpec,
    lease: RunLease,
    view: LiveView | None = None,
) -> None:
    verbose = not sys.stderr.isatty()
    where = at.storage
    copies = ship_data(where, {c.data for _, c in todo}, log) if where else {}
    # Longest runs first (stable): in the study's order AlexNet and the most epochs come
    # last, and one such run keeps a slot busy while the others idle.
    work = {key: work_of(c) for key, c in todo}
    todo = sorted(todo, key=lambda kc: -work[kc[0]])
    tasks = [
        RunTask(
            key,
            c.to_dict(),
            at.run(key),
            data_dir,
            verbose=verbose,
            stop_stalled_after=spec.stop_stalled_after,
            storage=where.url if where else None,
            data_copy=copies.get(c.data),
        )
        for key, c in todo
    ]
    varying = _varying(spec)
    progress = Progress(spec.name, work).open_bar()

    def on_start(task: RunTask) -> bool:
        if not lease.take(task):
            progress.skip(task.key)
            return False
        log(progress.start(task.key, run_label(task.config, varying)))
        return True

    for outcome in runner.run(tasks, on_start):
        key = outcome.key
        lease.release(key)
        if outcome.error is not None or outcome.result is None:
            error = outcome.error or "no result"
            store.fail_run(key, error)
            log(f"run {key} failed: {error}")
        else:
            store.finish_run(key, outcome.result, outcome.history, outcome.provenance)
            res = outcome.result
            state = "diverged" if res["diverged"] else f"val_acc {res['val_acc']:.2f}"
            state += f", test_acc {res['test_acc']:.2f} ({res['train_s']:.0f}s)"
            if not progress.bar_shown:
                log(f"run {key} done: {state}")
        progress.finish(key, failed=outcome.error is not None or outcome.result is None)
        if view is not None:
            view.poke()  # a run ended: the page shows it within seconds
    progress.close()
