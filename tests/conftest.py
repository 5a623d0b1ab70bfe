"""Shared fixtures: small generated data, isolated caches, a CLI runner."""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from squeezelab.results import Store
from squeezelab.studies.spec import load_study

ROOT = Path(__file__).resolve().parents[1]


def load_benchmark(name: str) -> Any:
    """A script of ``benchmarks/`` as a module (they are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("SQUEEZELAB_DATA_DIR", str(cache))
    torch.set_num_threads(2)
    return cache


def run_cli(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the installed console script as a user would."""
    proc = subprocess.run(
        ["squeezelab", *args], capture_output=True, text=True, timeout=timeout, env=os.environ
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"squeezelab {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def modern_v2(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Ship, for this test, the modern recipe as its next version would be if that version
    changed SqueezeNet 1.0 + BN's dropout only (its section's ``since`` is 2). Returns it."""
    import copy

    from squeezelab.training import recipes as recipes_module

    shipped = recipes_module.recipes()
    raw = copy.deepcopy(shipped["modern"])
    raw["version"] = 2
    raw["models"]["squeezenet1_0+bn"] |= {"dropout": 0.0, "since": 2}
    monkeypatch.setattr(recipes_module, "recipes", lambda: {**shipped, "modern": raw})
    return raw


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def write_cifar_archive(path: Path, n_train: int = 60, n_test: int = 20, classes: int = 10) -> Path:
    """Write a tiny CIFAR-10 archive in the official python format."""
    rng = np.random.default_rng(0)

    def batch(n: int) -> bytes:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(i % classes) for i in range(n)]
        return pickle.dumps({b"data": data, b"labels": labels, b"batch_label": b"x"})

    members = {f"data_batch_{i}": batch(n_train // 5) for i in range(1, 6)}
    members["test_batch"] = batch(n_test)
    names = [f"class{i}".encode() for i in range(classes)]
    members["batches.meta"] = pickle.dumps({b"label_names": names})
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_jpeg_archive(
    path: Path, per_class: int = 12, classes: tuple[str, ...] = ("cat", "dog", "frog")
) -> Path:
    """Write a tar.gz of class folders of 32x32 JPEGs under one top folder."""
    rng = np.random.default_rng(1)
    with tarfile.open(path, "w:gz") as tar:
        for c, name in enumerate(classes):
            for i in range(per_class):
                arr = np.full((32, 32, 3), 40 + 80 * c, np.uint8)
                arr += rng.integers(0, 30, arr.shape, dtype=np.uint8)
                buf = io.BytesIO()
                Image.fromarray(arr).save(buf, format="JPEG")
                info = tarfile.TarInfo(f"train/{name}/{i:04d}.jpg")
                info.size = buf.tell()
                buf.seek(0)
                tar.addfile(info, buf)
    return path


@pytest.fixture
def cifar_archive(tmp_path: Path) -> Path:
    return write_cifar_archive(tmp_path / "cifar-10-python.tar.gz")


@pytest.fixture
def jpeg_archive(tmp_path: Path) -> Path:
    return write_jpeg_archive(tmp_path / "images.tar.gz")


PYTHON = sys.executable


def store_builtin(db: Path, name: str, accuracy: Callable[[Any], float | None]) -> list:
    """A store holding built-in study ``name``, each run finished at ``accuracy(config)``
    (validation and test alike; None leaves the run unfinished). Returns the study's runs."""
    spec = load_study(name)
    runs = spec.expand()
    with Store(db) as store:
        store.add_study(
            spec.name,
            {**dataclasses.asdict(spec), "notes": {}},
            [(c.key(), c.to_dict(), "run") for c in runs],
        )
        for c in runs:
            acc = accuracy(c)
            if acc is not None:
                result = {"val_acc": acc, "test_acc": acc, "epochs": c.epochs, "diverged": False}
                store.finish_run(c.key(), result, [{"epoch": 1, "val_acc": acc, "epoch_s": 1.0}])
    return runs
