"""Executors: run a list of run configs one by one, N at a time in processes, or on Ray.

Each executor calls :func:`execute_run` wherever the run happens and hands its outcome back
to the driver, which alone writes the store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigError
from ..storage import Storage, scratch_root


@dataclass(frozen=True)
class RunTask:
    """One run to execute: its key, config, directory and where it may run."""

    key: str
    config: dict[str, Any]
    run_dir: str
    data_dir: str | None = None
    device: str | None = None
    threads: int | None = None
    verbose: bool = False  # one line per epoch (for logs; a TTY gets a progress bar instead)
    stop_stalled_after: int | None = None  # the study's rule for runs stuck at chance
    storage: str | None = None  # train in node-local scratch, copy to STORAGE/KEY as it goes
    data_copy: str | None = None  # the run's data file in storage, for nodes without its path


@dataclass(frozen=True)
class RunOutcome:
    """What an executor hands back for one run: its result, every epoch's metrics and its
    provenance (the run's record: versions, device, precision), or the error that
    stopped it. Plain data: it crosses process and Ray boundaries."""

    key: str
    error: str | None = None
    result: dict[str, Any] | None = None
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    provenance: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def failed(cls, key: str, error: str) -> RunOutcome:
        return cls(key, error=error)


def execute_run(task: RunTask) -> RunOutcome:
    """Train (or resume, or just read back) one run; return its result, history and provenance."""
    import torch

    from ..data.sources import local_copies
    from ..training import from_dict

    if task.threads:
        torch.set_num_threads(task.threads)
    try:
        cfg = from_dict(task.config, f"run {task.key}")
        storage, run_dir = _where(task)
        with local_copies(_data_here(cfg.data, task.data_copy)):
            outcome = _train(task, cfg, run_dir, storage)
        if storage is not None:  # storage now mirrors the run; scratch is not needed
            storage.push(run_dir, task.key, mirror=True)
            shutil.rmtree(run_dir, ignore_errors=True)
    except KeyboardInterrupt:
        raise
    except Exception as err:  # a failing run is recorded, and the study goes on
        detail = traceback.format_exception_only(type(err), err)[-1].strip()
        return RunOutcome.failed(task.key, detail)
    return RunOutcome(task.key, None, outcome.result.to_dict(), outcome.history, outcome.provenance)


def _train(task: RunTask, cfg: Any, run_dir: Path, storage: Storage | None) -> Any:
    from ..training import train

    return train(
        cfg,
        run_dir,
        data_dir=task.data_dir,
        resume=True,
        device=task.device,
        progress=False,
        verbose=task.verbose,
        stop_stalled_after=task.stop_stalled_after,
        on_epoch=None if storage is None else lambda out: storage.push(out, task.key),
    )


def _data_here(spec: str, copy: str | None) -> dict[str, Path]:
    """The run's data on this node: its own path when the node holds it (checked against the
    driver's content), else the copy in storage, fetched once per node and checked too."""
    if copy is None:
        return {}
    from ..data.sources import DataError, content_digest

    root, digest, name = copy.rsplit("/", 2)
    path = Path(spec).expanduser()
    if path.exists():
        here = content_digest(path)
        if here != digest:
            raise DataError(f"data {spec} holds other content on this node than on the driver "
                            f"(hash {here}, the run's {digest})")  # fmt: skip
        return {}
    local = scratch_root() / "data" / digest / name
    if not local.is_file():
        Storage(root).get(digest, name, local)
    if content_digest(local) != digest:
        local.unlink()
        raise DataError(f"data {spec}: the copy fetched from {copy} does not hold its content")
    return {spec: local}


def _where(task: RunTask) -> tuple[Storage | None, Path]:
    """Where a run trains: its run folder, or (with storage) this node's scratch, filled from
    storage first so that a run moved from a lost node resumes from its last epoch there."""
    if not task.storage:
        return None, Path(task.run_dir)
    storage = Storage(task.storage)
    local = scratch_root() / task.key
    storage.pull(task.key, local)
    return storage, local


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def cpu_count() -> int:
    """The cores this process may run on: ``taskset`` or a container's CPU set, not the
    machine's (``os.cpu_count`` counts every core, and two studies pinned to one core each
    would each start one thread per core of the machine on theirs)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


@dataclass(frozen=True)
class Slot:
    """A place for one run at a time: a device (None: the CPU) and its torch threads."""

    device: str | None
    threads: int


def plan_slots(
    gpus: int, cpus: int, workers: int = 1, runs_per_device: int | None = None
) -> list[Slot]:
    """Where concurrent runs go.

    With GPUs, ``runs_per_device`` runs share each GPU (default: ``workers`` spread over the
    GPUs); without, ``runs_per_device`` (or ``workers``) processes split the CPU cores. The
    slots alternate between devices, so that a partly filled machine spreads its runs, and
    each gets an equal share of the CPU threads. A run's numbers depend on its device and,
    on a CPU, on its thread count (both are recorded in its provenance), not on its neighbours.
    """
    for name, value in (("workers", workers), ("runs_per_device", runs_per_device)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    devices: list[str | None] = [f"cuda:{i}" for i in range(gpus)] or [None]
    total = runs_per_device * len(devices) if runs_per_device else workers
    threads = max(1, cpus // total)
    return [Slot(devices[i % len(devices)], threads) for i in range(total)]


class Placer:
    """Hands out free slots to tasks and takes them back when the task ends."""

    def __init__(self, slots: list[Slot]) -> None:
        self.free = list(slots)
        self.held: dict[str, Slot] = {}

    def take(self, task: RunTask) -> RunTask:
        slot = self.free.pop(0)
        self.held[task.key] = slot
        return dataclasses.replace(
            task, device=task.device or slot.device, threads=task.threads or slot.threads
        )

    def give_back(self, task: RunTask) -> None:
        self.free.append(self.held.pop(task.key))


OnStart = Callable[[RunTask], bool]  # False: skip the task (another process holds it)


def _pipeline(
    tasks: list[RunTask],
    limit: int,
    submit: Callable[[RunTask], Any],
    wait_one: Callable[[list[Any]], list[Any]],
    collect: Callable[[Any, RunTask], RunOutcome],
    on_start: OnStart,
) -> Iterator[RunOutcome]:
    """Keep at most ``limit`` tasks in flight; yield outcomes as they complete."""
    queue = list(tasks)
    in_flight: dict[Any, RunTask] = {}
    while queue or in_flight:
        while queue and len(in_flight) < limit:
            task = queue.pop(0)
            if on_start(task):
                in_flight[submit(task)] = task
        for handle in wait_one(list(in_flight)):
            yield collect(handle, in_flight.pop(handle))


class LocalExecutor:
    """Run tasks in this process (one slot, no GPU) or in one spawned process per slot
    (:func:`plan_slots`: several runs per GPU, or the CPU cores split between processes)."""

    def __init__(self, workers: int = 1, runs_per_device: int | None = None) -> None:
        self.slots = plan_slots(_gpu_count(), cpu_count(), workers, runs_per_device)

    def run(self, tasks: list[RunTask], on_start: OnStart) -> Iterator[RunOutcome]:
        placer = Placer(self.slots)
        if len(self.slots) == 1:  # one run at a time: in this process
            for task in tasks:
                if on_start(task):
                    yield execute_run(placer.take(task))
                    placer.give_back(task)
            return

        def collect(fut: Future, task: RunTask) -> RunOutcome:
            placer.give_back(task)
            err = fut.exception()
            return RunOutcome.failed(task.key, f"worker died: {err!r}") if err else fut.result()

        pool = ProcessPoolExecutor(
            len(self.slots),
            mp_context=get_context("spawn"),
            initializer=_watch_parent,
            initargs=(os.getpid(),),
        )
        try:
            yield from _pipeline(
                tasks,
                len(self.slots),
                lambda t: pool.submit(execute_run, placer.take(t)),
                lambda handles: list(wait(handles, return_when=FIRST_COMPLETED)[0]),
                collect,
                on_start,
            )
        except BaseException:  # Ctrl-C, SIGTERM, an error in the driver: stop the runs too
            _stop_workers(pool)
            raise
        pool.shutdown()


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Stop the runs in flight now rather than after they finish (hours, maybe).

    A worker killed mid-epoch loses that epoch only: checkpoints are written atomically at
    epoch ends, and the run directory's lock is a ``flock`` the kernel releases.
    """
    terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if terminate is not None:
        terminate()
        return
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        if proc.is_alive():
            proc.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def _watch_parent(parent: int, every: float = 1.0) -> None:
    """In a worker: exit when the driver that started it is gone (killed with SIGKILL, say),
    rather than train on as an orphan that a restarted study would then collide with."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


ADDRESS_FORMS = "auto, IP:port (e.g. 10.0.0.5:6379) or ray://host:port"


def check_address(address: str | None, timeout: float = 5.0) -> None:
    """Refuse an address Ray would misread, and one where nothing answers, before Ray tries
    (its own attempt waits minutes before it gives up)."""
    if address is None or address == "auto":
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--address {address!r}: expected {ADDRESS_FORMS}")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as err:
        why = err.strerror or type(err).__name__
        raise ConfigError(
            f"--address {address}: nothing answers at {host}:{port} ({why}). "
            f"{ray_hint()[0].upper()}{ray_hint()[1:]}"
        ) from None


def ray_hint() -> str:
    """What a failed connection to a Ray cluster should make a user check."""
    mode = os.environ.get("RAY_AUTH_MODE")
    token = "set" if os.environ.get("RAY_AUTH_TOKEN") else "not set"
    return (
        "check the address and port (the head's GCS port, 6379 by default, or the client "
        "port 10001 for ray://), that this machine can reach it, and token authentication: "
        f"RAY_AUTH_MODE is {mode or 'not set'} and RAY_AUTH_TOKEN is {token} here (Ray >= 2.52 "
        "clusters started with RAY_AUTH_MODE=token refuse a driver without the same token)"
    )


@contextlib.contextmanager
def _held_stderr(hold: bool) -> Iterator[None]:
    """Hold what C++ code writes to file descriptor 2 while the block runs (Ray's core worker
    logs each retry of a refused connection there); ``--debug`` lets it through."""
    if not hold:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def connect_ray(address: str | None = None, workers: int | None = None) -> Any:
    """Ray, connected: to the cluster at ``address`` (``auto``, ``IP:port``, ``ray://``) or to
    a local one started here; a failure names what to check instead of a traceback."""
    check_address(address)
    try:
        import ray
    except ImportError:
        raise ConfigError("the Ray executor needs Ray: pip install 'squeezelab[ray]'") from None
    if ray.is_initialized():
        return ray
    kwargs: dict[str, Any] = {"address": address} if address else {}
    if not address and workers:
        kwargs["num_cpus"] = workers
    quiet = not os.environ.get("SQUEEZELAB_DEBUG")
    if quiet:
        kwargs["logging_level"] = logging.WARNING  # no INFO lines about connecting
    try:
        with _held_stderr(quiet):  # a refused token: 20 lines of C++ retries, then our one
            ray.init(ignore_reinit_error=True, log_to_driver=False, **kwargs)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError, OSError) as err:
        detail = " ".join(str(err).split())[:300]
        raise ConfigError(
            f"could not connect to the Ray cluster at {address or 'a new local cluster'}: "
            f"{detail}. {ray_hint()[0].upper()}{ray_hint()[1:]}"
        ) from None
    return ray


class RayExecutor:
    """Run tasks as Ray tasks on a local or existing cluster; retry runs whose worker died."""

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        runs_per_device: int | None = None,
    ) -> None:
        self.ray = ray = connect_ray(address, workers)
        self.runs_per_device = runs_per_device or 1
        gpus = int(ray.cluster_resources().get("GPU", 0))
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.workers = gpus * self.runs_per_device if gpus else workers or cpus

    def run(self, tasks: list[RunTask], on_start: OnStart) -> Iterator[RunOutcome]:
        ray = self.ray
        gpus = ray.cluster_resources().get("GPU", 0)
        # max_retries re-runs a task whose worker process died; it resumes from its checkpoint.
        # A fractional GPU lets Ray pack runs_per_device runs onto each GPU.
        share = 1.0 / self.runs_per_device if gpus else 0
        remote = ray.remote(num_cpus=1, num_gpus=share, max_retries=3)(execute_run)

        def collect(ref: Any, task: RunTask) -> RunOutcome:
            try:
                return ray.get(ref)
            except Exception as err:  # failed even after its retries
                return RunOutcome.failed(task.key, f"ray task failed: {err}")

        yield from _pipeline(
            tasks,
            self.workers,
            remote.remote,
            lambda refs: ray.wait(refs, num_returns=1)[0],
            collect,
            on_start,
        )


class Executor(Protocol):
    """Runs a study's tasks and yields each :class:`RunOutcome` as it finishes; ``on_start``
    is called as each task starts and may skip it (False: another process holds it)."""

    def run(self, tasks: list[RunTask], on_start: OnStart) -> Iterator[RunOutcome]: ...


def _local(workers: int, address: str | None, runs_per_device: int | None) -> Executor:
    return LocalExecutor(workers, runs_per_device)


def _ray(workers: int, address: str | None, runs_per_device: int | None) -> Executor:
    return RayExecutor(address, workers, runs_per_device)


# The executors by name: the command line's --executor choices are these keys.
EXECUTORS: dict[str, Callable[[int, str | None, int | None], Executor]] = {
    "local": _local,
    "ray": _ray,
}


def make_executor(
    name: str, workers: int = 1, address: str | None = None, runs_per_device: int | None = None
) -> Executor:
    """Return the executor ``name`` (one of :data:`EXECUTORS`)."""
    if name not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {name!r}")
    return EXECUTORS[name](workers, address, runs_per_device)
