"""Executors: run a list of run configs one by one, N at a time in processes, or on Ray.

Each executor calls :func:`execute_run` wherever the run happens and hands its outcome back
to the driver, which alone writes the store.
"""

from __future__ import annotations

import dataclasses
import os
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any


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


def execute_run(task: RunTask) -> dict[str, Any]:
    """Train (or resume, or just read back) one run; return its result, history and recipe."""
    import torch

    from ..training import from_dict, train

    if task.threads:
        torch.set_num_threads(task.threads)
    try:
        cfg = from_dict(task.config, f"run {task.key}")
        outcome = train(
            cfg,
            task.run_dir,
            data_dir=task.data_dir,
            resume=True,
            device=task.device,
            progress=False,
            verbose=task.verbose,
        )
    except KeyboardInterrupt:
        raise
    except Exception as err:  # a failing run is recorded, and the study goes on
        detail = traceback.format_exception_only(type(err), err)[-1].strip()
        return {"key": task.key, "error": detail}
    return {
        "key": task.key,
        "result": outcome.result.to_dict(),
        "history": outcome.history,
        "recipe": outcome.recipe,
    }


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


OnStart = Callable[[RunTask], bool]  # False: skip the task (another process holds it)


def _pipeline(
    tasks: list[RunTask],
    limit: int,
    submit: Callable[[RunTask], Any],
    wait_one: Callable[[list[Any]], list[Any]],
    collect: Callable[[Any, RunTask], dict[str, Any]],
    on_start: OnStart,
) -> Iterator[dict[str, Any]]:
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
    """Run tasks in this process (workers=1) or in N spawned processes, one GPU each."""

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers

    def run(self, tasks: list[RunTask], on_start: OnStart) -> Iterator[dict[str, Any]]:
        if self.workers == 1:
            for task in tasks:
                if on_start(task):
                    yield execute_run(task)
            return
        gpus = _gpu_count()
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        placed = [
            dataclasses.replace(
                t,
                threads=t.threads or threads,
                device=t.device or (f"cuda:{i % gpus}" if gpus else None),
            )
            for i, t in enumerate(tasks)
        ]

        def collect(fut: Future, task: RunTask) -> dict[str, Any]:
            err = fut.exception()
            return {"key": task.key, "error": f"worker died: {err!r}"} if err else fut.result()

        with ProcessPoolExecutor(self.workers, mp_context=get_context("spawn")) as pool:
            yield from _pipeline(
                placed,
                self.workers,
                lambda t: pool.submit(execute_run, t),
                lambda handles: list(wait(handles, return_when=FIRST_COMPLETED)[0]),
                collect,
                on_start,
            )


class RayExecutor:
    """Run tasks as Ray tasks on a local or existing cluster; retry runs whose worker died."""

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise RuntimeError(
                "the Ray executor needs Ray: pip install 'squeezelab[ray]'"
            ) from None
        self.ray = ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"address": address} if address else {}
            if not address and workers:
                kwargs["num_cpus"] = workers
            ray.init(ignore_reinit_error=True, log_to_driver=False, **kwargs)
        self.workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))

    def run(self, tasks: list[RunTask], on_start: OnStart) -> Iterator[dict[str, Any]]:
        ray = self.ray
        gpus = ray.cluster_resources().get("GPU", 0)
        # max_retries re-runs a task whose worker process died; it resumes from its checkpoint.
        remote = ray.remote(num_cpus=1, num_gpus=1 if gpus else 0, max_retries=3)(execute_run)

        def collect(ref: Any, task: RunTask) -> dict[str, Any]:
            try:
                return ray.get(ref)
            except Exception as err:  # failed even after its retries
                return {"key": task.key, "error": f"ray task failed: {err}"}

        yield from _pipeline(
            tasks,
            self.workers,
            remote.remote,
            lambda refs: ray.wait(refs, num_returns=1)[0],
            collect,
            on_start,
        )


def make_executor(name: str, workers: int = 1, address: str | None = None):
    """Return the executor ``name`` (local or ray)."""
    if name == "local":
        return LocalExecutor(workers)
    if name == "ray":
        return RayExecutor(address, workers)
    raise ValueError(f"executor must be local or ray, got {name!r}")
