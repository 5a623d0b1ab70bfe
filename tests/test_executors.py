"""Where runs go: slots per device, several runs per GPU, packed runs equal to runs alone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from squeezelab.results import Store
from squeezelab.studies import executors, load_study, run_study
from squeezelab.studies.executors import LocalExecutor, Placer, RunTask, Slot, plan_slots

from .test_studies import _tiny_study


def test_no_gpu_splits_the_cores_between_processes() -> None:
    assert plan_slots(0, 16) == [Slot(None, 16)]
    assert plan_slots(0, 16, runs_per_device=4) == [Slot(None, 4)] * 4
    assert plan_slots(0, 2, workers=3) == [Slot(None, 1)] * 3  # never below one thread


def test_one_gpu_takes_n_runs() -> None:
    assert plan_slots(1, 16) == [Slot("cuda:0", 16)]
    assert plan_slots(1, 16, runs_per_device=8) == [Slot("cuda:0", 2)] * 8


def test_several_gpus_alternate_so_a_partial_load_spreads() -> None:
    slots = plan_slots(4, 16, runs_per_device=2)
    assert [s.device for s in slots] == [f"cuda:{i % 4}" for i in range(8)]
    assert {s.threads for s in slots} == {2}
    # Without --runs-per-device, --workers runs are spread over the GPUs.
    assert [s.device for s in plan_slots(2, 8, workers=3)] == ["cuda:0", "cuda:1", "cuda:0"]


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_bad_counts_are_refused(bad) -> None:
    with pytest.raises(ValueError, match="runs_per_device must be a positive integer"):
        plan_slots(1, 4, runs_per_device=bad)


def test_local_executor_reads_the_gpu_count(monkeypatch) -> None:
    monkeypatch.setattr(executors, "_gpu_count", lambda: 2)
    slots = LocalExecutor(runs_per_device=3).slots
    assert len(slots) == 6 and [s.device for s in slots].count("cuda:1") == 3
    monkeypatch.setattr(executors, "_gpu_count", lambda: 0)
    assert LocalExecutor(workers=1).slots == [Slot(None, executors.cpu_count())]


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity here")
def test_a_study_pinned_to_some_cores_splits_those_cores(monkeypatch) -> None:
    """`taskset -c 0 squeezelab study run ...` on a 2-core machine: one thread, not two."""
    monkeypatch.setattr(executors, "_gpu_count", lambda: 0)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert executors.cpu_count() == 1
    assert LocalExecutor(workers=1).slots == [Slot(None, 1)]
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert LocalExecutor(runs_per_device=2).slots == [Slot(None, 2)] * 2


def test_placer_never_puts_more_than_n_runs_on_a_device() -> None:
    placer = Placer(plan_slots(2, 8, runs_per_device=2))
    tasks = [RunTask(f"k{i}", {}, f"/r/{i}") for i in range(6)]
    running = [placer.take(t) for t in tasks[:4]]
    assert [t.device for t in running] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert all(t.threads == 2 for t in running) and not placer.free
    placer.give_back(tasks[1])  # a run on cuda:1 ends: the next run goes there
    assert placer.take(tasks[4]).device == "cuda:1"
    # A task that names its device keeps it.
    placer.give_back(tasks[0])
    pinned = RunTask("k9", {}, "/r/9", device="cpu")
    assert placer.take(pinned).device == "cpu"


def test_packed_runs_equal_the_same_runs_alone(tmp_path: Path) -> None:
    """Two runs at once in two processes give exactly the metrics each gives alone (same
    device, same thread count): the store's run key keeps its meaning."""
    spec = load_study(str(_tiny_study(tmp_path))).with_overrides({"seeds": [0]})
    counts = run_study(spec, tmp_path / "p.db", runs_per_device=2, log=lambda m: None)
    assert counts["done"] == 4
    threads = plan_slots(0, os.cpu_count() or 1, runs_per_device=2)[0].threads
    with Store(tmp_path / "p.db") as store:
        packed = {r.key: r for r in store.runs(spec.name)}
    assert {r.provenance["threads"] for r in packed.values()} == {threads}
    for key, record in packed.items():
        task = RunTask(key, dict(record.config), str(tmp_path / "alone" / key), threads=threads)
        alone = executors.execute_run(task)

        def numbers(history):
            keys = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc")
            return [{k: row[k] for k in keys} for row in history]

        assert alone.result is not None and alone.error is None
        assert numbers(alone.history) == numbers(record.history)
        assert alone.result["test_acc"] == record.result.test_acc


torch = pytest.importorskip("torch")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_packed_runs_on_one_gpu_equal_runs_alone(tmp_path: Path) -> None:
    spec = load_study(str(_tiny_study(tmp_path))).with_overrides({"seeds": [0]})
    run_study(spec, tmp_path / "g.db", runs_per_device=4, log=lambda m: None)
    with Store(tmp_path / "g.db") as store:
        packed = {r.key: r for r in store.runs(spec.name)}
    assert {r.provenance["device"] for r in packed.values()} == {"cuda:0"}
    for key, record in packed.items():
        task = RunTask(key, dict(record.config), str(tmp_path / "alone" / key), device="cuda:0")
        alone = executors.execute_run(task)
        assert alone.result is not None and alone.result["val_acc"] == record.result.val_acc


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cuda_run_trains_in_mixed_precision(tmp_path: Path) -> None:
    from squeezelab.training import from_dict, train

    # The CPU's "it learns" check (tests/test_training.py): the training loss over 320 images
    # falls below chance's ln(10); 40 validation images are too few to show it (the first GPU
    # run ended at 7.5% validation after 2 epochs, as this config does on a CPU in fp32: 10%).
    cfg = from_dict(
        {"data": "synthetic:400", "image_size": 32, "batch_size": 32, "epochs": 3, "lr": 0.01}
        | {"batch_norm": True}
    )
    outcome = train(cfg, tmp_path / "g", device="cuda", verbose=False)
    assert outcome.provenance["device"].startswith("cuda")
    assert outcome.provenance["precision"] in ("bf16", "fp16")
    losses = [row["train_loss"] for row in outcome.history]
    assert not outcome.result.diverged
    assert losses[-1] < losses[0] - 0.1 and losses[-1] < 2.2
