"""Cluster readiness: the doctor's checks per node, Ray addresses and auth, and the one-writer
store refused on a network file system."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from squeezelab.errors import ConfigError
from squeezelab.results import Store, StoreError
from squeezelab.results import store as store_module
from squeezelab.studies import executors
from squeezelab.studies.doctor import probe, run_doctor, versions

from .conftest import run_cli

MOUNTS = """\
/dev/sda1 / ext4 rw 0 0
server:/export /mnt/shared nfs4 rw 0 0
/dev/sdb1 /mnt/shared/local\\040disk ext4 rw 0 0
"""


def test_the_file_system_of_a_path_is_its_longest_mount(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(MOUNTS)
    of = store_module.filesystem_of
    assert of(Path("/mnt/shared/runs/s.db"), str(mounts)) == "nfs4"
    assert of(Path("/mnt/shared/local disk/s.db"), str(mounts)) == "ext4"
    assert of(Path("/mnt/sharedother"), str(mounts)) == "ext4"  # a prefix is not a mount
    assert of(Path("/x"), str(tmp_path / "none")) is None


def test_a_store_on_a_network_file_system_is_refused_unless_vouched_for(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(store_module, "filesystem_of", lambda path, mounts="": "nfs4")
    with pytest.raises(StoreError, match=r"network file system \(nfs4\).*--runs-dir"):
        Store(tmp_path / "s.db")
    assert not (tmp_path / "s.db").exists()
    monkeypatch.setenv(store_module.ALLOW_NETWORK, "1")
    with Store(tmp_path / "s.db") as store:  # the user says only this process writes
        assert store.studies() == []
    monkeypatch.delenv(store_module.ALLOW_NETWORK)
    with Store(tmp_path / "s.db", readonly=True) as store:  # reading is always allowed
        assert store.studies() == []


@pytest.mark.parametrize("address", ["10.0.0.5", "ray://host", "host:port", "1.2.3.4:70000"])
def test_an_address_ray_would_misread_is_refused(address: str) -> None:
    with pytest.raises(ConfigError, match="expected auto, IP:port"):
        executors.check_address(address)


def test_an_address_where_nothing_answers_is_named_at_once() -> None:
    with pytest.raises(ConfigError, match=r"nothing answers at 127\.0\.0\.1:1 .*RAY_AUTH_MODE"):
        executors.check_address("127.0.0.1:1", timeout=2.0)
    executors.check_address("auto")  # Ray finds a local cluster itself
    executors.check_address(None)


def test_a_failed_connection_names_the_token_not_a_traceback(monkeypatch) -> None:
    ray = pytest.importorskip("ray")
    monkeypatch.setattr(executors, "check_address", lambda address, timeout=5.0: None)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)

    def refuse(**kwargs):
        raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.5:6379.")

    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    with pytest.raises(ConfigError) as err:
        executors.connect_ray("10.0.0.5:6379")
    message = str(err.value)
    assert message.startswith("could not connect to the Ray cluster at 10.0.0.5:6379: Failed")
    assert "RAY_AUTH_MODE is token and RAY_AUTH_TOKEN is not set here" in message


def test_a_node_reports_storage_data_and_versions_problems(tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(b"the driver's data")
    from squeezelab.data.sources import content_hash

    ok = probe(str(tmp_path / "runs"), str(data), content_hash(data), versions())
    assert ok["problems"] == [] and ok["facts"]["free_gb"] > 0
    assert (tmp_path / "runs").is_dir() and not list((tmp_path / "runs").iterdir())  # cleaned
    other = probe(None, str(data), "0" * 24, {**versions(), "torch": "1.0"})
    assert any("torch" in p and "1.0 on the driver" in p for p in other["problems"])
    assert any("other content here than on the driver" in p for p in other["problems"])
    blocked = tmp_path / "file"
    blocked.write_text("")
    bad = probe(str(blocked / "runs"), str(tmp_path / "missing"), "x", versions())
    assert any(p.startswith(f"storage {blocked / 'runs'}") for p in bad["problems"])
    assert any("does not exist on this node" in p for p in bad["problems"])


def test_doctor_prints_a_line_per_node_and_a_verdict(tmp_path: Path) -> None:
    ok = run_cli("doctor", "--storage", str(tmp_path / "runs"))
    lines = ok.stdout.strip().splitlines()
    assert lines[0].endswith(": ok") and lines[-1] == "1 node(s), all ready"
    bad = run_cli("doctor", "--storage", str(tmp_path), "--data", str(tmp_path / "x"), check=False)
    assert bad.returncode == 2 and "no such file or folder on the driver" in bad.stderr
    (tmp_path / "f").write_text("")
    broken = run_cli("doctor", "--storage", str(tmp_path / "f" / "runs"), "--json", check=False)
    out = json.loads(broken.stdout)
    assert broken.returncode == 1 and out["ok"] is False and out["nodes"][0]["problems"]
    assert len(run_doctor()) == 1


@pytest.mark.slow
def test_doctor_on_a_ray_cluster_that_asks_for_a_token(tmp_path: Path) -> None:
    """A real local Ray head started with token authentication: without the token the
    doctor says to check it; with it, every node answers."""
    ray_cli = shutil.which("ray")
    if ray_cli is None:
        pytest.skip("Ray is not installed")
    token = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "squeezelab-test-token-0123456789abcdef"}
    env = {**os.environ, **token}
    port = "6391"
    subprocess.run([ray_cli, "start", "--head", "--port", port, "--num-cpus", "1",
                    "--include-dashboard=false"], env=env, check=True, capture_output=True,
                   timeout=120)  # fmt: skip
    try:
        plain = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
        refused = subprocess.run(
            ["squeezelab", "doctor", "--executor", "ray", "--address", f"127.0.0.1:{port}"],
            env=plain, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert refused.returncode == 2 and "RAY_AUTH_TOKEN is not set here" in refused.stderr
        ready = subprocess.run(
            ["squeezelab", "doctor", "--executor", "ray", "--address", f"127.0.0.1:{port}",
             "--storage", str(tmp_path / "runs")],
            env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert ready.returncode == 0, ready.stderr[-2000:]
        assert ready.stdout.strip().splitlines()[-1] == "1 node(s), all ready"
    finally:
        subprocess.run([ray_cli, "stop", "--force"], env=env, capture_output=True, timeout=120)
