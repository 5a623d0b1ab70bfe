"""Run storage for nodes that share no disk: runs train in node-local scratch and their files
reach storage every epoch; a run moved to another node resumes from storage; transfer
sources, ``compress`` and ``evaluate`` read from storage alone. Storage is a folder (as NFS)
and an S3 bucket on a moto server the test starts (skipped where moto or s3fs is missing)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from squeezelab.storage import RunsAt, Storage, StorageError, join, local_run
from squeezelab.studies import load_study, parse_study, run_study
from squeezelab.studies.executors import RunTask, execute_run
from squeezelab.training import from_dict, train

from .conftest import run_cli, write_jpeg_archive

TINY = {"data": "synthetic:200", "image_size": 32, "batch_size": 32, "lr": 0.01}


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This "node's" scratch, apart from the storage and the store."""
    root = tmp_path / "node-a"
    monkeypatch.setenv("SQUEEZELAB_SCRATCH", str(root))
    return root / "squeezelab"


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    """An S3 bucket on a local moto server, as ``s3://bucket``."""
    pytest.importorskip("s3fs")
    server_mod = pytest.importorskip("moto.server")
    import os

    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                             "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")}  # fmt: skip
    endpoint = f"http://{host}:{port}"
    os.environ.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                      AWS_ENDPOINT_URL=endpoint, AWS_DEFAULT_REGION="us-east-1")  # fmt: skip
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    s3fs.S3FileSystem().mkdir("bucket")
    yield "s3://bucket/runs"
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    s3fs.S3FileSystem.clear_instance_cache()


def _folder(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("where", ["folder", "s3"])
def test_push_pull_and_mirror(where: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = str(tmp_path / "storage") if where == "folder" else request.getfixturevalue("s3")
    storage = Storage(url)
    storage.probe()
    run = tmp_path / "run"
    (run / "tb").mkdir(parents=True)
    for name, text in {"checkpoint.safetensors": "c1", "metrics.jsonl": "m", "tb/ev": "e",
                       ".lock": ""}.items():  # fmt: skip
        (run / name).write_text(text)
    storage.push(run, "k1")
    assert storage.files("k1") == {"checkpoint.safetensors", "metrics.jsonl", "tb/ev"}
    (run / "checkpoint.safetensors").unlink()  # a finished run: its checkpoint goes
    (run / "model.safetensors").write_text("w")
    storage.push(run, "k1", mirror=True)
    assert storage.files("k1") == {"model.safetensors", "metrics.jsonl", "tb/ev"}
    back = tmp_path / "back"
    (back / "stale").mkdir(parents=True)
    assert storage.pull("k1", back) and _folder(back) == {
        k: v for k, v in _folder(run).items() if k != ".lock"
    }
    assert not storage.pull("nothing", tmp_path / "none") and not (tmp_path / "none").exists()
    if where == "s3":  # a run in a bucket is copied to this node for the block
        missing = pytest.raises(StorageError, match="holds no run folder nothing")
        with missing, local_run(join(url, "nothing")):
            pass
        with local_run(join(url, "k1")) as copy:
            assert _folder(copy) == _folder(back)
        assert not copy.exists()  # a private copy, gone after the block
    else:  # a folder (NFS) is read where it is
        with local_run(join(url, "k1")) as here:
            assert here == Path(url) / "k1"


def test_unwritable_storage_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StorageError, match="could not make a folder in storage"):
        Storage(str(tmp_path / "file" / "runs")).probe()
    with pytest.raises(StorageError, match="storage 'nope://x'"):
        Storage("nope://x")


class NoCredentials(Exception):
    """Stands in for a cloud backend's own error (botocore's NoCredentialsError is no
    OSError)."""


@pytest.mark.parametrize("error", [NoCredentials("Unable to locate credentials"),
                                   FileNotFoundError(2, "No such file or directory")])  # fmt: skip
def test_a_backends_own_failure_is_a_storage_error_naming_the_step(
    error: Exception, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offline S3 without credentials, or a folder whose parent cannot exist (``/proc/x``),
    must read as one line naming the storage and the step, not an unexpected traceback;
    reading a run that is not there still reads as "nothing there"."""
    storage = Storage(str(tmp_path / "runs"))

    def fail(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(storage.fs, "makedirs", fail)
    with pytest.raises(StorageError, match=r"could not make a folder in storage .*runs: \S"):
        storage.probe()
    assert storage.files("absent") == set() and storage.run_keys() == set()
    with pytest.raises(StorageError, match="holds no absent/x"):
        storage.get("absent", "x", tmp_path / "x")


def test_a_run_moved_to_another_node_resumes_from_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scratch: Path
) -> None:
    cfg = from_dict({**TINY, "epochs": 3, "batch_norm": True})
    whole = train(cfg, tmp_path / "whole", verbose=False)  # the run never interrupted
    storage = Storage(tmp_path / "storage")
    task = RunTask("k", cfg.to_dict(), join(storage.url, "k"), storage=storage.url)

    class NodeLost(Exception):
        pass

    def lost_after_first_epoch(out: Path) -> None:
        storage.push(out, "k")
        raise NodeLost  # the node dies right after its first epoch reached storage

    with pytest.raises(NodeLost):
        train(cfg, scratch / "k", verbose=False, on_epoch=lost_after_first_epoch)
    assert "checkpoint.safetensors" in storage.files("k")
    shutil.rmtree(scratch.parent)  # the node's disk is gone with it
    monkeypatch.setenv("SQUEEZELAB_SCRATCH", str(tmp_path / "node-b"))
    outcome = execute_run(task)  # Ray retries the task on another node
    assert outcome.error is None
    assert [r["epoch"] for r in outcome.history] == [1, 2, 3]
    assert outcome.provenance["resumed_after"] == [1]  # from storage, not from scratch
    same = ("val_acc", "val_loss", "test_acc", "test_loss", "train_loss", "epochs", "diverged")
    assert {k: outcome.result[k] for k in same} == {k: whole.result.to_dict()[k] for k in same}
    assert storage.files("k") >= {"model.safetensors", "result.json", "config.json"}
    assert "checkpoint.safetensors" not in storage.files("k")  # mirrored: the run is done
    assert not (tmp_path / "node-b" / "squeezelab" / "k").exists()  # scratch cleaned


TRANSFER = """
seeds = [0]
[base]
data = "synthetic:200"
image_size = 32
batch_size = 32
epochs = 1
lr = 0.01
[axes]
init = ["imagenet", "none"]
[pretrain]
data = "synthetic:200"
epochs = 1
"""


def test_a_transfer_study_in_s3_needs_nothing_from_scratch(
    s3: str, tmp_path: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source model and the runs land in the bucket; scratch is empty afterwards; the
    report, compress and evaluate work from the store and the bucket alone."""
    monkeypatch.setattr("squeezelab.training.transfer.imagenet_weights", _offline)
    spec = parse_study(TRANSFER, "transfer-s3")
    db = tmp_path / "s.db"
    counts = run_study(spec, db, storage=s3, keep_weights=True, log=lambda m: None)
    assert counts["done"] == 3 and counts["failed"] == 0
    shutil.rmtree(scratch.parent)  # every node's scratch deleted
    storage = Storage(s3)
    from squeezelab.results import Store

    with Store(db, readonly=True) as store:
        runs = store.runs("transfer-s3", role=None)
    for r in runs:
        assert storage.files(r.key) >= {"model.safetensors", "result.json", "metrics.jsonl"}
    assert [r.role for r in runs].count("source") == 1
    key = next(r.key for r in runs if r.config.init and r.config.init.startswith("s3://"))
    assert json.loads(run_cli("evaluate", join(s3, key), "--json").stdout.strip().splitlines()[-1])
    out = tmp_path / "c.sqzc"
    run_cli("compress", join(s3, key), "--sparsity", "0.5", "--bits", "5", "--out", str(out))
    assert out.stat().st_size > 0
    assert run_cli("report", "--db", str(db), "--out", str(tmp_path / "r")).returncode == 0
    # Run again: nothing to train, nothing fetched into scratch.
    again = run_study(spec, db, storage=s3, log=lambda m: None)
    assert again["done"] == 3


def _offline(model_name: str) -> dict:
    from squeezelab.training.checkpoint import CheckpointError

    raise CheckpointError("offline (test)")


def test_storage_and_runs_dir_are_one_place(tmp_path: Path) -> None:
    from squeezelab.errors import ConfigError

    with pytest.raises(ConfigError, match="--storage or --runs-dir, not both"):
        run_study(load_study("bypass"), tmp_path / "s.db", storage=str(tmp_path / "a"),
                  runs_dir=tmp_path / "b")  # fmt: skip


CLUSTER_STUDY = """
seeds = [0, 1]
[base]
model = "squeezenet1_1"
data = "synthetic:600"
image_size = 32
batch_size = 32
epochs = 8
lr = 0.01
[axes]
batch_norm = [false, true]
"""


@pytest.mark.slow
def test_a_ray_cluster_loses_a_node_mid_study_and_keeps_nothing_in_scratch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A head and two workers on this machine (each node its own scratch: a folder per node
    id). One worker is killed once a run has an epoch in storage; Ray retries its runs on the
    other, they resume from storage, and the study ends with every run once, whole. Then
    every node's scratch is deleted, and every run's files are in storage."""
    cluster_utils = pytest.importorskip("ray.cluster_utils")
    import time

    import ray

    monkeypatch.setenv("SQUEEZELAB_SCRATCH", str(tmp_path / "scratch"))
    cluster = cluster_utils.Cluster(
        initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False}
    )
    doomed = cluster.add_node(num_cpus=1)
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    storage = Storage(tmp_path / "storage")
    spec = parse_study(CLUSTER_STUDY, "cluster")
    db = tmp_path / "s.db"
    import threading

    killed: list[float] = []

    def kill_when_a_run_has_an_epoch() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            # Both workers' first runs have an epoch in storage: one of them is lost mid-run.
            if sum(storage.exists(k, "checkpoint.safetensors") for k in storage.run_keys()) >= 2:
                cluster.remove_node(doomed, allow_graceful=False)
                killed.append(time.monotonic())
                return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_when_a_run_has_an_epoch, daemon=True)
    monkeypatch.setattr("squeezelab.training.transfer.imagenet_weights", _offline)
    try:
        on_cluster = {"executor": "ray", "address": cluster.address, "storage": storage.url}
        quiet = lambda m: None  # noqa: E731
        transfer = run_study(parse_study(TRANSFER, "transfer"), db, log=quiet, **on_cluster)
        killer.start()  # now a worker is lost mid-study
        counts = run_study(spec, db, log=quiet, workers=2, keep_weights=True, **on_cluster)
    finally:
        killer.join(timeout=5)
        ray.shutdown()
        cluster.shutdown()
    assert killed, "no run reached storage before the study ended: nothing was killed"
    assert transfer["done"] == 3 and transfer["failed"] == 0, transfer
    assert counts["done"] == 4 and counts["failed"] == 0, counts
    shutil.rmtree(tmp_path / "scratch", ignore_errors=True)
    from squeezelab.results import Store

    with Store(db, readonly=True) as store:
        runs = store.runs("cluster")
    assert len(runs) == 4
    resumed = [r.provenance.get("resumed_after") for r in runs if r.provenance]
    assert any(after and after[0] >= 1 for after in resumed), resumed  # not from scratch
    for r in runs:
        assert [row["epoch"] for row in r.history] == list(range(1, 9))  # once each
        assert storage.files(r.key) >= {"model.safetensors", "result.json", "metrics.jsonl"}
        assert "checkpoint.safetensors" not in storage.files(r.key)
    # The report and compress work from the store and storage alone (scratch is gone).
    best = max(runs, key=lambda r: r.result.val_acc or 0.0)
    out = tmp_path / "best.sqzc"
    run_cli("compress", join(storage.url, best.key), "--bits", "5", "--out", str(out))
    assert out.stat().st_size > 0
    assert run_cli("report", "--db", str(db), "--out", str(tmp_path / "r")).returncode == 0


def test_data_reaches_a_node_that_lacks_it_once_and_checked(
    tmp_path: Path, scratch: Path, jpeg_archive: Path
) -> None:
    """The driver puts the data file in storage once; a node without the driver's path
    trains on the copy (fetched once, checked against the content hash); a node whose file
    at that path holds other data refuses it by name."""
    from squeezelab.studies.runner import run_key, ship_data

    storage = Storage(tmp_path / "storage")
    logged: list[str] = []
    copies = ship_data(storage, {str(jpeg_archive), "synthetic:100"}, logged.append)
    assert list(copies) == [str(jpeg_archive)] and len(logged) == 1
    assert ship_data(storage, {str(jpeg_archive)}, logged.append) == copies  # once
    assert len(logged) == 1
    cfg = from_dict({**TINY, "data": str(jpeg_archive), "epochs": 1})
    key = run_key(cfg)
    task = RunTask(key, cfg.to_dict(), join(storage.url, key), storage=storage.url,
                   data_copy=copies[str(jpeg_archive)])  # fmt: skip
    driver_copy = jpeg_archive.read_bytes()
    jpeg_archive.unlink()  # this "node" lacks the driver's path
    outcome = execute_run(task)
    assert outcome.error is None and outcome.result["test_acc"] is not None
    fetched = list((scratch / "data").rglob("images.tar.gz"))
    assert len(fetched) == 1 and fetched[0].read_bytes() == driver_copy
    write_jpeg_archive(jpeg_archive, per_class=5)  # other data under the same path
    other = RunTask(key, cfg.replace(epochs=2).to_dict(), join(storage.url, "k2"),
                    storage=storage.url, data_copy=copies[str(jpeg_archive)])  # fmt: skip
    refused = execute_run(other)
    assert refused.error and "holds other content on this node than on the driver" in refused.error


def test_the_live_page_reads_a_running_runs_curve_from_storage(s3: str, tmp_path: Path) -> None:
    """A run training on another node has only the epochs its node copied to storage: the
    live view draws them from there (a folder or a bucket alike)."""
    from squeezelab.results.records import Fields, RunRecord
    from squeezelab.studies.live import _curve

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(
        '{"epoch": 1, "val_acc": 21.5}\n{"epoch": 2, "val_acc": 40}\n'
    )
    for url in (str(tmp_path / "storage"), s3):
        Storage(url).push(run, "k")
        record = RunRecord("k", Fields({}), status="running", run_dir=join(url, "k"))
        assert _curve(record) == [21.5, 40.0]
    assert _curve(RunRecord("k", Fields({}), status="running", run_dir=join(s3, "none"))) == []


def test_runs_at_names_each_run_folder_and_drops_files_wherever_they_live(
    tmp_path: Path, s3: str
) -> None:
    """One value says where a study's runs go: a folder or storage, the same calls for both."""
    local = RunsAt.of(None, tmp_path / "runs")
    assert local.storage is None and local.run("k1") == str(tmp_path / "runs" / "k1")
    assert local.holds(tmp_path / "runs" / "k1" / "final_model.pth")  # a run still to come
    assert not local.holds(tmp_path / "elsewhere.pth")
    (tmp_path / "runs" / "k1").mkdir(parents=True)
    (tmp_path / "runs" / "k1" / "model.safetensors").write_bytes(b"w")
    local.drop("k1", "model.safetensors")
    local.drop("k1", "model.safetensors")  # gone already: nothing to do
    assert not (tmp_path / "runs" / "k1" / "model.safetensors").exists()

    remote = RunsAt.of(s3 + "/", tmp_path / "unused")  # probed on the way in
    assert remote.storage is not None and remote.run("k1") == f"{s3}/k1"
    assert not remote.holds(tmp_path / "runs" / "k1")
    (tmp_path / "w").write_bytes(b"w")
    key = "runs-at"  # the bucket is the module's: a key no other test writes
    remote.storage.put(tmp_path / "w", key, "model.safetensors")
    remote.storage.put(tmp_path / "w", key, "metrics.jsonl")
    remote.drop(key, "model.safetensors")
    assert remote.storage.files(key) == {"metrics.jsonl"}
    with pytest.raises(StorageError, match="storage 'nope://x'"):
        RunsAt.of("nope://x", tmp_path)
