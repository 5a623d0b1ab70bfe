"""Concurrency, study files and run identity under hostile or careless use."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from squeezelab.results import Store
from squeezelab.studies import load_study, parse_study, run_study
from squeezelab.studies.runner import run_key
from squeezelab.studies.spec import parse_filters
from squeezelab.training import ConfigError

from .conftest import run_cli, write_jpeg_archive
from .test_studies import STUDY

# --- concurrency ------------------------------------------------------------------------------


def test_two_writers_on_one_run_directory(tmp_path: Path) -> None:
    out = tmp_path / "r"
    args = ["squeezelab", "train", "--data", "synthetic:3000", "--image-size", "32",
            "--epochs", "3", "--out", str(out)]  # fmt: skip
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / ".lock").is_file():
        time.sleep(0.05)
    while time.time() < deadline and "pid" not in (out / ".lock").read_text():
        time.sleep(0.05)
    second = run_cli("train", *args[2:], check=False)
    assert second.returncode == 2
    assert f"is being trained into by pid {first.pid}" in second.stderr
    assert first.wait(timeout=300) == 0
    assert (out / "result.json").is_file()  # the first writer's run is whole


def test_two_study_processes_share_the_work(tmp_path: Path) -> None:
    study = tmp_path / "c.toml"
    study.write_text(STUDY.replace("synthetic:200", "synthetic:600"))  # 8 runs
    db = tmp_path / "s.db"
    cmd = ["squeezelab", "study", "run", str(study), "--db", str(db)]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    with Store(db) as store:
        runs = store.runs("c")
    assert len(runs) == 8 and all(r.status == "done" for r in runs)
    assert all(r.attempts == 1 for r in runs)  # every run trained exactly once
    started = [line for _, err in outs for line in err.splitlines() if line.startswith("[")]
    assert len(started) == 8


def test_a_killed_owner_shows_interrupted_and_is_taken_over(tmp_path: Path) -> None:
    spec = parse_study(STUDY.replace("seeds = [0, 1]", "seeds = [0]"), "i")
    db = tmp_path / "s.db"
    run_study(spec, db, log=lambda m: None)
    key = run_key(spec.expand()[0])
    with Store(db) as store:  # as if a process that has since died held this run
        store.conn.execute(
            "UPDATE runs SET status='running', owner=?, heartbeat=? WHERE key=?",
            (f"{__import__('socket').gethostname()}:999999999:dead", time.time(), key),
        )
        assert store.status_counts("i")["interrupted"] == 1
        assert store.lease_run(key, str(tmp_path), "me:1:x")
        assert not store.lease_run(key, str(tmp_path), "other:2:y")  # alive: me, beating


# --- study files -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("axes = 5", "axes must be a table"),
        ("base = [1, 2]", "base must be a table"),
        ("points = [1, 2]", "each \\[\\[points\\]\\] entry must be a table"),
        ('[best_of]\nstudy = "grid"\nfields = 5', "'fields' must be a list of run field names"),
        ("[base]\nlr = inf", "'lr' must be a finite number"),
        ("[base]\nlr = nan", "'lr' must be a finite number"),
        ("[base]\nepochs = 1e20", "'epochs' must be an integer|epochs must be <="),
        ("[base]\nepochs = 1000000", "epochs must be <= 100,000"),
        ("[axes]\n" + "\n".join(f"{f} = {list(range(1, 31))}" for f in
         ("epochs", "step_size", "warmup_epochs", "plateau_patience")), "expands to 810,000 runs"),
    ],
)  # fmt: skip
def test_bad_study_files_are_clear_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_study(text, "bad", "bad.toml")


def test_huge_grid_dry_run_fails_fast(tmp_path: Path) -> None:
    axes = "\n".join(f"{f} = {list(range(1, 101))}" for f in ("epochs", "step_size", "seed"))
    (tmp_path / "big.toml").write_text(f"[axes]\n{axes}\n[base]\nscheduler = 'step'\n")
    t0 = time.perf_counter()
    proc = run_cli("study", "run", str(tmp_path / "big.toml"), "--dry-run", check=False)
    assert proc.returncode == 2 and "expands to 1,000,000 runs" in proc.stderr
    assert time.perf_counter() - t0 < 30


# --- run identity -----------------------------------------------------------------------------


def test_data_replaced_under_the_same_path_is_new_data(tmp_path: Path) -> None:
    data = write_jpeg_archive(tmp_path / "imgs.tar.gz", per_class=6)
    text = STUDY.replace('"synthetic:200"', f'"{data}"').replace("seeds = [0, 1]", "seeds = [0]")
    study = tmp_path / "d.toml"
    study.write_text(text)
    spec = load_study(str(study))
    first = {run_key(c) for c in spec.expand()}
    write_jpeg_archive(data, per_class=8)  # other images, same path
    second = {run_key(c) for c in spec.expand()}
    assert first.isdisjoint(second)
    named = parse_study(STUDY, "n").expand()[0]
    assert run_key(named) == named.key()  # named sources keep the config's hash


def test_dry_run_shows_the_stores_keys_and_what_is_left(tmp_path: Path) -> None:
    """The keys a dry run prints are the store's (data files hashed in), each with its status."""
    data = write_jpeg_archive(tmp_path / "imgs.tar.gz", per_class=6)
    text = STUDY.replace('"synthetic:200"', f'"{data}"').replace("seeds = [0, 1]", "seeds = [0]")
    study, db = tmp_path / "d.toml", tmp_path / "s.db"
    study.write_text(text)
    fresh = run_cli("study", "run", str(study), "--db", str(db), "--dry-run")
    assert {line.split()[1] for line in fresh.stdout.splitlines()} == {"new"}
    assert "0 already finished" in fresh.stderr and not db.exists()  # a dry run writes nothing
    run_study(load_study(str(study)), db, log=lambda m: None, only=parse_filters(["lr=0.05"]))
    dry = run_cli("study", "run", str(study), "--db", str(db), "--dry-run")
    shown = {line.split()[0]: line.split()[1] for line in dry.stdout.splitlines()}
    with Store(db) as store:
        assert shown == store.statuses("d")
    assert sorted(shown.values()) == ["done", "done", "pending", "pending"]
    assert "d: 4 run(s), 2 already finished in" in dry.stderr and "2 to run" in dry.stderr
    with Store(db) as store:  # a diverged run is finished too: a run would not retrain it
        pending = next(k for k, v in shown.items() if v == "pending")
        store.conn.execute("UPDATE runs SET status='diverged' WHERE key=?", (pending,))
    dry = run_cli("study", "run", str(study), "--db", str(db), "--dry-run")
    assert "3 already finished" in dry.stderr and "1 to run" in dry.stderr


def test_runs_of_an_older_release_resume_and_join_new_studies(tmp_path: Path) -> None:
    """A run directory and a store written before fields were added (here: recipe, ema_decay,
    tta_flip, stem_stride) are read as those fields at their defaults."""
    from squeezelab.results import Store
    from squeezelab.training import from_dict, train

    new_fields = ("recipe", "ema_decay", "tta_flip", "stem_stride")
    cfg = from_dict({"data": "synthetic:100", "image_size": 32, "epochs": 2, "batch_size": 32})
    run = tmp_path / "run"
    train(cfg.replace(epochs=2), run, verbose=False, keep_checkpoint=True)
    recipe = json.loads((run / "config.json").read_text())
    for name in new_fields:
        del recipe["config"][name]
    (run / "config.json").write_text(json.dumps(recipe))
    (run / "result.json").unlink()
    assert train(cfg, run, resume=True, verbose=False).result.epochs == 2  # not "different"

    old = {k: v for k, v in cfg.to_dict().items() if k not in new_fields}
    with Store(tmp_path / "s.db") as store:
        store.add_study("s", {}, [(cfg.key(), old, "run")])
        store.finish_run(cfg.key(), {"val_acc": 50.0, "epochs": 2}, [])
        store.add_study("s", {}, [(cfg.key(), cfg.to_dict(), "run")])  # re-run after upgrade
        (record,) = store.runs("s")
    assert record.status == "done" and record.result.val_acc == 50.0
    assert dict(record.config) == cfg.to_dict()
