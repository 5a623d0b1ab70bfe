"""``squeezelab doctor``: check, on every node a study would use, what its runs will need.

Each node writes and reads back a probe file in the storage folder, checks the data (that the
path exists there and holds the driver's content: the content hash that run keys are built
from), reports torch, the device and the precision ``auto`` resolves to, the free disk, and
the versions of squeezelab, torch and Ray against the driver's. One line per node, then a
verdict; a problem makes the command exit non-zero before a study wastes a night on it.
"""

from __future__ import annotations

import dataclasses
import platform
import shutil
import socket
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import ConfigError
from ..storage import Storage, StorageError, is_url, scratch_root

MIN_FREE_GB = 2.0  # a run directory with an AlexNet checkpoint is ~0.5 GB


@dataclasses.dataclass
class NodeReport:
    node: str
    facts: dict[str, Any]
    problems: list[str]

    def line(self) -> str:
        f = self.facts
        state = "ok" if not self.problems else "PROBLEM: " + "; ".join(self.problems)
        return (
            f"{self.node}: squeezelab {f.get('squeezelab')}, torch {f.get('torch')}, "
            f"ray {f.get('ray') or '-'}, {f.get('device')} {f.get('precision')}, "
            f"{f.get('free_gb', 0):.1f} GB free: {state}"
        )


def versions() -> dict[str, str | None]:
    import torch

    try:
        import ray

        ray_version: str | None = ray.__version__
    except ImportError:
        ray_version = None
    return {"squeezelab": __version__, "torch": torch.__version__, "ray": ray_version}


def probe(
    storage: str | None, data: str | None, data_hash: str | None, driver: dict[str, Any]
) -> dict[str, Any]:
    """What one node sees (runs on that node): its facts and its problems."""
    import torch

    from ..data.sources import content_hash
    from ..training.runtime import pick_device, resolve_precision

    facts: dict[str, Any] = {"node": socket.gethostname(), **versions()}
    problems: list[str] = []
    for name in ("squeezelab", "torch", "ray"):
        if driver.get(name) and facts.get(name) != driver.get(name):
            problems.append(f"{name} {facts.get(name)} here, {driver[name]} on the driver")
    dev = pick_device(None)
    facts["device"] = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    facts["precision"] = resolve_precision("auto", dev)
    remote = is_url(storage or "")
    # Runs train in a local storage folder, or (remote storage) in this node's scratch.
    folder = Path(storage) if storage and not remote else scratch_root()
    reachable = True
    try:
        folder.mkdir(parents=True, exist_ok=True)  # as a study makes its runs folder
        facts["free_gb"] = shutil.disk_usage(folder).free / 1e9
        if facts["free_gb"] < MIN_FREE_GB:
            problems.append(f"{facts['free_gb']:.1f} GB free in {folder} (< {MIN_FREE_GB:g} GB)")
    except OSError as err:
        facts["free_gb"], reachable = 0.0, False
        problems.append(f"storage {folder}: {err.strerror or err}")
    if storage and (remote or reachable):  # the probe a study's own storage check makes
        try:
            Storage(storage).probe()
        except (StorageError, OSError) as err:
            problems.append(f"storage {storage}: cannot write and read a file ({err})")
    if data and data_hash:
        path = Path(data)
        if not path.exists():
            problems.append(f"data {data} does not exist on this node")
        elif content_hash(path) != data_hash:
            problems.append(f"data {data} holds other content here than on the driver")
    return {"facts": facts, "problems": problems}


def run_doctor(
    executor: str = "local",
    address: str | None = None,
    storage: str | None = None,
    data: str | None = None,
) -> list[NodeReport]:
    """Probe the driver's machine (``local``) or every alive node of a Ray cluster."""
    from ..data.sources import content_hash

    data_hash = None
    if data:
        path = Path(data)
        if not path.exists():
            raise ConfigError(f"--data {data}: no such file or folder on the driver")
        data_hash = content_hash(path)
    driver = versions()
    if executor == "local":
        out = probe(storage, data, data_hash, driver)
        return [NodeReport(f"{platform.node()} (local)", out["facts"], out["problems"])]
    if executor != "ray":
        raise ConfigError(f"--executor must be local or ray, got {executor!r}")
    from .executors import connect_ray

    ray = connect_ray(address)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    remote = ray.remote(num_cpus=0)(probe)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    refs = [
        remote.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
        ).remote(storage, data, data_hash, driver)
        for n in nodes
    ]
    reports = []
    for node, ref in zip(nodes, refs, strict=True):
        host = node.get("NodeManagerHostname") or node["NodeID"][:8]
        name = f"{host} ({node['NodeManagerAddress']})"
        try:
            out = ray.get(ref, timeout=300)
            reports.append(NodeReport(name, out["facts"], out["problems"]))
        except Exception as err:  # a node that cannot run the probe is itself the problem
            reports.append(NodeReport(name, {}, [f"the probe did not run: {err}"]))
    return reports
