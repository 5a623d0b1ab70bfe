"""Studies: spec validation and expansion, the store, the CLI, kill-and-restart, Ray."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from squeezelab.analysis.published import published_runs, published_value
from squeezelab.results import Store
from squeezelab.storage import RunsAt
from squeezelab.studies import builtin_studies, load_study, parse_overrides, parse_study, run_study
from squeezelab.studies.runner import run_key
from squeezelab.studies.spec import parse_filters
from squeezelab.training import ConfigError, RunConfig, from_dict

from .conftest import last_json, run_cli

SMALL = {"data": "synthetic:200", "epochs": 1, "image_size": 32, "batch_size": 32}

STUDY = """
description = "tiny"
seeds = [0, 1]
[base]
epochs = 1
image_size = 32
batch_size = 32
batch_norm = true
data = "synthetic:200"
[axes]
lr = [0.05, 0.01]
momentum = [0.9, 0.5]
"""


def test_grid_expansion_counts_and_values() -> None:
    spec = parse_study(STUDY, "tiny")
    runs = spec.expand()
    assert len(runs) == 2 * 2 * 2
    assert {(r.lr, r.momentum, r.seed) for r in runs} == {
        (lr, m, s) for lr in (0.05, 0.01) for m in (0.9, 0.5) for s in (0, 1)
    }
    assert all(r.batch_norm and r.epochs == 1 for r in runs)
    assert len({r.key() for r in runs}) == 8


def test_the_recipe_search_stages_live_apart_and_keep_their_names() -> None:
    mine, research = builtin_studies(), builtin_studies(research=True)
    assert "modern-compare" in mine and not any("modern-search" in n for n in mine)
    assert "research/modern-search-4" in research and len(research) == 8
    # the full name and the bare one (older stores and scripts) load the same study, whose
    # name in a store stays the stem, so stores written before the move still report it
    full, bare = load_study("research/modern-search-4"), load_study("modern-search-4")
    assert full.name == bare.name == "modern-search-4"
    assert [r.key() for r in full.expand()] == [r.key() for r in bare.expand()]
    with pytest.raises(ConfigError, match=r"recipe search's stages: research/modern-search"):
        load_study("no-such-study")
    with pytest.raises(ConfigError, match="unknown study"):
        load_study("research/../grid")


def test_builtin_studies_follow_the_paper_and_the_study() -> None:
    assert set(builtin_studies()) >= {
        "grid",
        "compare",
        "macro",
        "batchnorm",
        "transfer",
        "squeeze-ratio",
        "pct3x3",
        "bypass",
    }
    grid = load_study("grid").expand()
    assert len(grid) == 2 * 3 * 3 * 3 * 2  # models x batch x lr x momentum x wd (Table 2)
    assert {r.weight_decay for r in grid} == {0.0, 0.0002}
    macro = load_study("macro").expand()
    assert {r.fire_delta for r in macro} == {-2, -1, 0, 1, 2} and {r.batch_size for r in macro} == {
        64
    }
    bn = load_study("batchnorm").expand()
    assert {r.lr for r in bn} == {0.2, 0.1, 0.05, 0.01, 0.001}
    compare = load_study("compare").expand()
    assert {(r.model, r.lr) for r in compare} == {("alexnet", 0.01), ("squeezenet1_0", 0.001)}
    assert {r.scheduler for r in compare} == {"step", "plateau"} and {
        r.epochs for r in compare
    } == {50}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[base]\nlrate = 0.1", "unknown field.*lrate"),
        ("[axes]\nscheduler = ['exp']", "scheduler must be one of"),
        ("[axes]\nlr = 0.1", "'lr' must be a non-empty list"),
        ("[bases]\nlr = 0.1", "unknown section.*bases"),
        ("seeds = 'x'", "seeds must be"),
        ("[base]\nepochs = 'ten'", "'epochs' expects int"),
        ("[axes\n", "not valid TOML"),
    ],
)
def test_validation_names_file_and_field(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        parse_study(text, "bad", "studies/bad.toml")
    assert "studies/bad.toml" in str(err.value)


def test_overrides_apply_to_every_run() -> None:
    spec = load_study("grid").with_overrides(
        parse_overrides(["epochs=1", "train_subset=2000", "image_size=32", "lr=0.02", "seeds=3,4"])
    )
    runs = spec.expand()
    assert len(runs) == 2 * 3 * 3 * 2 * 2  # lr is no longer an axis; two seeds
    assert {r.lr for r in runs} == {0.02} and {r.seed for r in runs} == {3, 4}
    with pytest.raises(ConfigError, match="unknown field"):
        parse_overrides(["learning_rate=1"])


def test_unknown_study_lists_builtins() -> None:
    with pytest.raises(ConfigError, match="built-in studies are batchnorm"):
        load_study("gird")


def _tiny_study(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(STUDY)
    return path


def test_study_runs_resumes_and_stores_everything(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    spec = load_study(str(_tiny_study(tmp_path)))
    counts = run_study(spec, db, log=lambda m: None)
    assert counts == {
        "done": 8,
        "running": 0,
        "interrupted": 0,
        "failed": 0,
        "diverged": 0,
        "left": 0,
    }
    with Store(db) as store:
        runs = store.runs("tiny")
        assert len(runs) == 8
        for r in runs:
            assert r.result.val_acc is not None and r.provenance is not None
            assert len(r.history) == 1 and r.history[0]["epoch"] == 1
            assert r.history[0]["val_acc"] == r.result.val_acc and r.config.epochs == 1
            assert r.provenance["key"] == r.key
            # The store keeps every float exactly as the run wrote it.
            line = json.loads((Path(r.run_dir) / "metrics.jsonl").read_text().splitlines()[0])
            assert r.history[0]["train_loss"] == line["train_loss"]
    # Running again runs nothing new.
    messages: list[str] = []
    run_study(spec, db, log=messages.append)
    assert any("8 already finished, 0 to run" in m for m in messages)


def test_only_runs_part_of_a_study_and_leaves_the_rest(tmp_path: Path) -> None:
    """``--only``: the matching runs now, the others registered as left for a later call."""
    study, db = str(_tiny_study(tmp_path)), tmp_path / "s.db"
    with pytest.raises(ConfigError, match="--only matches no run of 'tiny'"):
        run_study(load_study(study), db, log=lambda m: None, only=parse_filters(["lr=0.3"]))
    with Store(db) as store:  # refused before anything was registered or trained
        assert "tiny" not in store.studies()
    dry = run_cli("study", "run", study, "--dry-run", "--only", "lr=0.05", "--only", "seed=1")
    assert len(dry.stdout.splitlines()) == 2  # lr 0.05 x 2 momenta x seed 1
    messages: list[str] = []
    only = parse_filters(["lr=0.05", "momentum=0.9,0.5", "seed=1"])
    counts = run_study(load_study(study), db, log=messages.append, only=only)
    assert (counts["done"], counts["left"]) == (2, 6)
    assert any("0 already finished, 2 to run (6 more left for later" in m for m in messages)
    with Store(db) as store:
        done = [r for r in store.runs("tiny") if r.status == "done"]
        assert {(r.config.lr, r.config.seed) for r in done} == {(0.05, 1)}
    assert run_study(load_study(study), db, log=lambda m: None)["done"] == 8  # the rest, later
    bad = run_cli("study", "run", study, "--db", str(db), "--only", "lr=0.3", check=False)
    assert bad.returncode == 2 and "--only matches no run of 'tiny'" in bad.stderr
    assert "lr in 0.01, 0.05" in bad.stderr
    bad = run_cli("study", "run", study, "--only", "depth=3", check=False)
    assert bad.returncode == 2 and "--only: unknown field 'depth'" in bad.stderr


def test_failing_run_is_recorded_and_study_goes_on(tmp_path: Path) -> None:
    text = STUDY.replace(
        "[axes]\nlr = [0.05, 0.01]", '[axes]\nlr = [0.05]\nmodel = ["squeezenet1_0", "alexnet"]'
    )
    text = text.replace("batch_norm = true\n", "")
    text = text.replace("seeds = [0, 1]", "seeds = [0]")
    # AlexNet cannot take 32x32 inputs: those runs fail, SqueezeNet runs finish.
    spec = parse_study(text, "mixed")
    counts = run_study(spec, tmp_path / "s.db", log=lambda m: None)
    assert counts["failed"] == 2 and counts["done"] == 2
    with Store(tmp_path / "s.db") as store:
        errors = [r.error for r in store.runs("mixed") if r.status == "failed"]
    assert all("cannot take 32x32" in e for e in errors)


def test_diverged_runs_are_recorded(tmp_path: Path) -> None:
    spec = parse_study(
        STUDY.replace("lr = [0.05, 0.01]", "lr = [1e6]").replace("batch_norm = true\n", ""), "boom"
    )
    counts = run_study(spec, tmp_path / "s.db", log=lambda m: None)
    assert counts["diverged"] == 4


def test_compare_takes_points_from_finished_grid(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    grid = load_study("grid").with_overrides(
        parse_overrides(
            [
                "epochs=1",
                "image_size=64",
                "data=synthetic:100",
                "batch_size=64",
                "weight_decay=0",
                "momentum=0.9",
                "model=squeezenet1_1",
            ]
        )
    )
    run_study(grid, db, log=lambda m: None)
    with Store(db) as store:
        best = max(store.runs("grid"), key=lambda r: r.result.test_acc)
    from squeezelab.studies import plan

    compare = load_study("compare").with_overrides(parse_overrides(["epochs=1", "seeds=0"]))
    with Store(db) as store:
        _, runs, notes = plan(compare, store, RunsAt(str(tmp_path)), lambda m: None)
    assert "best of study 'grid'" in notes["points_from"]
    assert {(r.model, r.lr) for r in runs} == {("squeezenet1_1", best.config["lr"])}


def test_a_second_declaration_under_one_study_name_is_said(tmp_path: Path) -> None:
    """Two calls with different --set values keep both declarations' runs under one study
    name (reported apart): the second call says so instead of adding them silently."""
    spec, db = load_study(str(_tiny_study(tmp_path))), tmp_path / "s.db"
    only = parse_filters(["lr=0.05", "momentum=0.9", "seed=0"])
    first: list[str] = []
    run_study(spec, db, log=first.append, only=only)
    assert not any("already holds" in m for m in first)
    second: list[str] = []
    run_study(spec.with_overrides(parse_overrides(["epochs=2"])), db, log=second.append, only=only)
    assert any("already holds 8 run(s) of the study that this call does not declare" in m
               for m in second)  # fmt: skip


def test_best_of_with_nothing_to_take_points_from_is_refused(tmp_path: Path) -> None:
    """[best_of] naming a study the store lacks, with no [[points]] to fall back on, used to
    train the [base] point alone and exit 0: now it is one error naming the study."""
    from squeezelab.studies import plan

    text = STUDY.replace("[axes]\nlr = [0.05, 0.01]\nmomentum = [0.9, 0.5]\n", "")
    text += '[best_of]\nstudy = "nosuch"\ngroup_by = ["model"]\nfields = ["lr"]\n'
    path = tmp_path / "b.toml"
    path.write_text(text)
    with Store(tmp_path / "s.db") as store, pytest.raises(ConfigError) as err:
        plan(load_study(str(path)), store, RunsAt(str(tmp_path)), lambda m: None)
    assert "[best_of] takes its points from study 'nosuch', and this store holds none" in str(
        err.value
    )
    proc = run_cli("study", "run", str(path), "--db", str(tmp_path / "c.db"), check=False)
    assert proc.returncode == 2 and "run 'nosuch' first" in proc.stderr
    dry = run_cli("study", "run", str(path), "--dry-run", check=False)  # what a run would say
    assert dry.returncode == 2 and "run 'nosuch' first" in dry.stderr


def test_transfer_pretrains_its_own_source_offline(tmp_path: Path, monkeypatch) -> None:
    import squeezelab.training.transfer as transfer
    from squeezelab.training.checkpoint import CheckpointError

    def offline(name: str):
        raise CheckpointError("no network")

    monkeypatch.setattr(transfer, "imagenet_weights", offline)
    sets = ["epochs=1", "image_size=32", "data=synthetic:200", "lr=0.01", "momentum=0.9"]
    spec = load_study("transfer").with_overrides(parse_overrides(sets))
    pretrain = {**spec.pretrain, "data": "synthetic:100", "epochs": 1, "image_size": 32}
    spec = dataclasses.replace(spec, pretrain=pretrain)
    counts = run_study(spec, tmp_path / "s.db", log=lambda m: None)
    assert counts["done"] == 3  # the source model, then from it and from scratch
    with Store(tmp_path / "s.db") as store:
        sources = store.runs("transfer", role="source")
        assert len(sources) == 1 and sources[0].status == "done"
        inits = {r.config["init"] for r in store.runs("transfer")}
        notes = store.study_spec("transfer")["notes"]
    assert None in inits and any(i and sources[0].key in i for i in inits)
    assert "pretrained here on synthetic:100" in notes["transfer_source"]


@pytest.fixture(scope="module")
def tiny_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny study run once through the command line (4 runs, one epoch each)."""
    tmp = tmp_path_factory.mktemp("tiny")
    db = tmp / "s.db"
    run_cli("study", "run", str(_tiny_study(tmp)), "--db", str(db), "--set", "seeds=0")
    return db


def test_study_status_counts_every_run(tiny_db: Path) -> None:
    status = json.loads(run_cli("study", "status", "--db", str(tiny_db), "--json").stdout)
    assert status == {
        "tiny": {"done": 4, "running": 0, "interrupted": 0, "failed": 0, "diverged": 0, "left": 0}
    }


def test_export_csv_has_one_row_per_run(tiny_db: Path) -> None:
    csv_text = run_cli("results", "export", "--db", str(tiny_db), "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    with Store(tiny_db, readonly=True) as store:
        runs = {r.key: r for r in store.runs("tiny")}
    assert len(rows) == 4 and list(rows[0])[:4] == ["study", "role", "key", "status"]
    for row in rows:
        assert float(row["val_acc"]) == pytest.approx(runs[row["key"]].result.val_acc)
        assert float(row["lr"]) == runs[row["key"]].config.lr


def test_export_parquet_keeps_types(tiny_db: Path, tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    out = tmp_path / "r.parquet"
    run_cli("results", "export", "--db", str(tiny_db), "--format", "parquet", "--out", str(out))
    frame = pd.read_parquet(out)
    assert len(frame) == 4 and set(frame["lr"]) == {0.05, 0.01}
    assert frame["batch_norm"].dtype == bool and frame["epochs"].dtype.kind == "i"


def test_export_per_epoch_rows_carry_the_history(tiny_db: Path) -> None:
    text = run_cli("results", "export", "--db", str(tiny_db), "--format", "json", "--metrics")
    rows = [json.loads(line) for line in text.stdout.strip().splitlines()]
    with Store(tiny_db, readonly=True) as store:
        history = {r.key: r.history for r in store.runs("tiny")}
    assert len(rows) == 4 and all(row["epoch"] == 1 for row in rows)
    for row in rows:
        assert row["epoch_val_acc"] == history[row["key"]][0]["val_acc"]


def test_workers_run_in_parallel_processes(tmp_path: Path) -> None:
    spec = load_study(str(_tiny_study(tmp_path))).with_overrides({"seeds": [0]})
    counts = run_study(spec, tmp_path / "p.db", workers=2, log=lambda m: None)
    assert counts["done"] == 4
    with Store(tmp_path / "p.db") as store:
        runs = store.runs()
        assert sorted(r.key for r in runs) == sorted(c.key() for c in spec.expand())
        # Each worker ran with its share of the cores (1 thread each on 2 cores).
        assert {r.provenance["threads"] for r in runs} == {max(1, os.cpu_count() // 2)}


def test_store_survives_a_corrupt_file_with_a_clear_error(tmp_path: Path) -> None:
    from squeezelab.results import StoreError

    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match="not a usable squeezelab store"):
        Store(bad)


@pytest.mark.slow
def test_kill_and_restart_runs_each_run_once(tmp_path: Path) -> None:
    study = tmp_path / "k.toml"
    study.write_text(
        STUDY.replace("epochs = 1", "epochs = 2").replace("synthetic:200", "synthetic:1000")
    )
    ref_db, db = tmp_path / "ref.db", tmp_path / "k.db"
    run_cli("study", "run", str(study), "--db", str(ref_db), "--runs-dir", str(tmp_path / "ref"))
    runs_dir = tmp_path / "runs"
    proc = subprocess.Popen(
        ["squeezelab", "study", "run", str(study), "--db", str(db), "--runs-dir", str(runs_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def mid_run() -> bool:
        # Two runs finished, and another has checkpointed epoch 1 but not finished.
        finished = list(runs_dir.glob("*/result.json"))
        started = [
            p
            for p in runs_dir.glob("*/checkpoint.safetensors")
            if not (p.parent / "result.json").exists()
        ]
        return len(finished) >= 2 and bool(started)

    deadline = time.time() + 300
    while not mid_run() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Store(db) as store:
        assert 2 <= store.status_counts("k")["done"] < 8
        counts = store.status_counts("k")
        # The run the kill interrupted: its owner process is dead, so it shows as such.
        assert counts["interrupted"] == 1 and counts["running"] == 0
    run_cli("study", "run", str(study), "--db", str(db), "--runs-dir", str(runs_dir))
    with Store(db) as store, Store(ref_db) as ref:
        got = {r.key: (r.result.val_acc, r.result.test_acc) for r in store.runs("k")}
        want = {r.key: (r.result.val_acc, r.result.test_acc) for r in ref.runs("k")}
        assert got == want and len(got) == 8
        assert all(len(r.history) == 2 for r in store.runs("k"))
        assert store.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 8
        attempts = sorted(r.attempts for r in store.runs("k"))
        assert attempts == [1] * 7 + [2]  # only the interrupted run ran twice (and resumed)


def _start_two_workers(tmp_path: Path) -> tuple[subprocess.Popen, list[int], Path]:
    """A study of 4 runs, 2 at a time in worker processes, stopped once both are mid-run."""
    study = tmp_path / "w.toml"
    study.write_text(
        STUDY.replace("epochs = 1", "epochs = 10").replace("synthetic:200", "synthetic:400")
    )
    db = tmp_path / "w.db"
    proc = subprocess.Popen(
        ["squeezelab", "study", "run", str(study), "--db", str(db), "--workers", "2",
         "--set", "seeds=0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(list((tmp_path / "runs").glob("*/checkpoint.safetensors"))) >= 2:
            break
        time.sleep(0.05)
    workers = [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit()
        and _ppid(p) == proc.pid
        and b"spawn_main" in (p / "cmdline").read_bytes()
    ]
    assert proc.poll() is None and len(workers) == 2, "the study did not reach two runs"
    return proc, workers, db


def _ppid(proc_dir: Path) -> int:
    try:
        stat = (proc_dir / "stat").read_text()
    except OSError:
        return -1
    return int(stat.rsplit(")", 1)[1].split()[1])


def _gone(pid: int, within: float) -> bool:
    """True once ``pid`` has exited (a zombie no reaper collects counts as exited)."""
    deadline = time.time() + within
    while time.time() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads worker processes from /proc")
def test_sigterm_to_the_study_stops_its_workers_and_keeps_the_store(tmp_path: Path) -> None:
    """``kill PID`` (or ``timeout``, a scheduler) reaches the driver alone: its workers must
    stop too, not train on as orphans; the runs they held show as interrupted and resume."""
    proc, workers, db = _start_two_workers(tmp_path)
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130
        assert "interrupted: re-run the same command to continue" in err
        assert "--resume" not in err
        assert all(_gone(pid, within=10) for pid in workers)
    finally:  # never leave orphans behind, even when the test fails
        proc.kill()
        _kill(workers)
    with Store(db) as store:
        counts = store.status_counts("w")
    assert counts["interrupted"] == 2 and counts["running"] == 0 and counts["done"] == 0
    # Restarted, it finishes every run; the two interrupted ones resume (a second attempt).
    run_cli("study", "run", str(tmp_path / "w.toml"), "--db", str(db), "--set", "seeds=0")
    with Store(db) as store:
        runs = store.runs("w")
    assert [r.status for r in runs] == ["done"] * 4
    assert sorted(r.attempts for r in runs) == [1, 1, 2, 2]


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads worker processes from /proc")
def test_workers_exit_when_their_driver_is_killed(tmp_path: Path) -> None:
    """SIGKILL leaves no handler to run: each worker notices its driver is gone and exits."""
    proc, workers, _ = _start_two_workers(tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    try:
        assert all(_gone(pid, within=10) for pid in workers)
    finally:  # never leave orphans behind, even when the test fails
        _kill(workers)


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_ray_executor_on_a_local_instance(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    import ray

    spec = load_study(str(_tiny_study(tmp_path))).with_overrides({"seeds": [0]})
    try:
        counts = run_study(spec, tmp_path / "r.db", executor="ray", workers=2, log=lambda m: None)
    finally:
        ray.shutdown()
    assert counts["done"] == 4
    with Store(tmp_path / "r.db") as store:
        runs = store.runs()
        assert sorted(r.key for r in runs) == sorted(c.key() for c in spec.expand())
        assert all(len(r.history) == 1 for r in runs)
        # Ray gives each task one CPU; torch in its workers uses one thread.
        assert {r.provenance["threads"] for r in runs} == {1}


def _quick_runs(study: str) -> list:
    from squeezelab.reproduce import resolve

    return next(s for s in resolve("quick") if s.name == study).expand()


@pytest.mark.slow
@pytest.mark.parametrize(("model", "lr"), [("squeezenet1_0", 0.001), ("alexnet", 0.03)])
def test_quick_preset_learns_on_its_default_data(tmp_path: Path, model: str, lr: float) -> None:
    """The quick preset's grid has, for each model, a point that leaves chance."""
    from squeezelab.training import train

    (cfg,) = [c for c in _quick_runs("grid") if (c.model, c.lr, c.batch_size) == (model, lr, 64)]
    assert cfg.data == "synthetic" and cfg.epochs == 3
    result = train(cfg, tmp_path / "r", verbose=False).result
    assert not result.diverged and result.val_acc > 20.0  # chance: 10%


@pytest.mark.slow
def test_quick_transfer_source_learns(tmp_path: Path) -> None:
    from squeezelab.reproduce import resolve
    from squeezelab.training import from_dict, train

    spec = next(s for s in resolve("quick") if s.name == "transfer")
    src = from_dict({**spec.pretrain, "model": "squeezenet1_0"})
    result = train(src, tmp_path / "src", verbose=False).result
    assert result.val_acc > 20.0


def test_a_group_that_never_left_chance_has_no_winner(tmp_path: Path) -> None:
    """Choosing the 'best' of cells all at chance would pick by the tie rule alone: compare
    takes the study file's point for that model instead, and says so."""
    from squeezelab.studies.runner import plan
    from squeezelab.training import from_dict

    with Store(tmp_path / "s.db") as store:
        cells = [
            ("alexnet", 0.05, 10.0), ("alexnet", 0.001, 10.3),  # never left chance
            ("squeezenet1_0", 0.05, 10.1), ("squeezenet1_0", 0.001, 41.0),
        ]  # fmt: skip
        configs = [from_dict({"model": m, "lr": lr, "momentum": 0.9}) for m, lr, _ in cells]
        store.add_study("grid", {}, [(c.key(), c.to_dict(), "run") for c in configs])
        for c, (_, _, acc) in zip(configs, cells):
            store.finish_run(c.key(), {"val_acc": acc, "test_acc": acc, "epochs": 1}, [],
                             {"num_classes": 10})  # fmt: skip
        messages: list[str] = []
        spec = load_study("compare").with_overrides({"seeds": [0], "epochs": 1})
        _, runs, _ = plan(spec, store, RunsAt(str(tmp_path / "runs")), messages.append)
    points = {(r.model, r.lr, r.weight_decay) for r in runs}
    # AlexNet: the study file's point (lr 0.01), not the tie-broken chance cell; SqueezeNet:
    # its grid winner on validation accuracy.
    assert points == {("alexnet", 0.01, 0.0), ("squeezenet1_0", 0.001, 0.0)}
    assert any("no cell of model=alexnet left chance" in m for m in messages)
    assert not any("squeezenet1_0 left chance" in m for m in messages)


def test_report_names_no_winner_where_no_cell_left_chance(tmp_path: Path) -> None:
    import dataclasses

    from squeezelab.analysis import build_report
    from squeezelab.training import from_dict

    spec = load_study("grid")
    spec_dict = dataclasses.asdict(spec)
    spec_dict.pop("raw")
    cells = [("alexnet", 0.05, 10.0), ("alexnet", 0.001, 10.4), ("squeezenet1_0", 0.001, 41.0)]
    configs = [from_dict({"model": m, "lr": lr, "momentum": 0.9}) for m, lr, _ in cells]
    with Store(tmp_path / "s.db") as store:
        store.add_study("grid", spec_dict, [(c.key(), c.to_dict(), "run") for c in configs])
        for c, (_, _, acc) in zip(configs, cells):
            store.finish_run(c.key(), {"val_acc": acc, "test_acc": acc, "epochs": 1},
                             [{"epoch": 1, "val_acc": acc, "epoch_s": 1.0}],
                             {"num_classes": 10, "config": c.to_dict()})  # fmt: skip
    build_report(tmp_path / "s.db", tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert "none: no cell left chance (first cell batch_size=64, lr=0.001" in text
    assert "batch_size=64, lr=0.001, momentum=0.9, weight_decay=0.0 |" in text  # SqueezeNet's


def test_longest_runs_start_first(tmp_path: Path, monkeypatch) -> None:
    """AlexNet (more MACs) and the longer runs start before cheap ones, whatever the file's
    order, so parallel slots finish close together; ties keep the study's order."""
    from squeezelab.studies import runner as runner_mod
    from squeezelab.studies.executors import RunOutcome

    started: list[dict] = []

    class Recorder:
        def run(self, tasks, on_start):
            for task in tasks:
                if on_start(task):
                    started.append(task.config)
                    yield RunOutcome.failed(task.key, "not trained (test)")

    monkeypatch.setattr(runner_mod, "make_executor", lambda *a, **k: Recorder())
    path = tmp_path / "order.toml"
    path.write_text(
        'description = "order"\nseeds = [0, 1]\n[base]\ndata = "synthetic:200"\n'
        "image_size = 64\nepochs = 1\n"
        '[[points]]\nmodel = "squeezenet1_1"\n'
        '[[points]]\nmodel = "squeezenet1_0"\nepochs = 2\n'
        '[[points]]\nmodel = "alexnet"\n'
        '[[points]]\nmodel = "squeezenet1_0"\n'
    )
    messages: list[str] = []
    run_study(load_study(str(path)), tmp_path / "s.db", log=messages.append)
    order = [(c["model"], c["epochs"], c["seed"]) for c in started]
    assert order == [
        ("squeezenet1_0", 2, 0),  # 2 x 49 M MACs per image beats AlexNet's 94 M
        ("squeezenet1_0", 2, 1),
        ("alexnet", 1, 0),
        ("alexnet", 1, 1),
        ("squeezenet1_0", 1, 0),
        ("squeezenet1_0", 1, 1),
        ("squeezenet1_1", 1, 0),
        ("squeezenet1_1", 1, 1),
    ]
    # The ETA weighs runs by their work once some has finished.
    progress = [m for m in messages if m.startswith("[")]
    assert "ETA" not in progress[0] and all("ETA" in m for m in progress[1:])


def test_missing_data_stops_a_study_and_reproduce_before_anything_is_written(
    tmp_path: Path,
) -> None:
    missing = str(tmp_path / "missing.tar.gz")
    db = tmp_path / "s.db"
    proc = run_cli("study", "run", "grid", "--data", missing, "--db", str(db), check=False)
    assert proc.returncode == 2 and not db.exists()
    assert proc.stderr.strip().splitlines() == [
        f"squeezelab study: error: data source {missing!r} is neither a known name (cifar10, "
        "cifar100, synthetic) nor an existing path"
    ]
    out = tmp_path / "repro"
    proc = run_cli("reproduce", "--data", missing, "--out", str(out), check=False)
    assert proc.returncode == 2 and not out.exists()
    assert proc.stderr.strip().splitlines()[-1].startswith("squeezelab reproduce: error: data")
    init = tmp_path / "b.toml"
    init.write_text(STUDY.replace("[axes]", f'init = "{tmp_path / "nope.pth"}"\n[axes]'))
    proc = run_cli("study", "run", str(init), "--db", str(db), check=False)
    assert proc.returncode == 2 and "nope.pth': no such file or run directory" in proc.stderr
    # train refuses it too, and leaves neither the run folder nor the parents it made for it
    (tmp_path / "kept").mkdir()
    for out in (tmp_path / "runs" / "deep" / "a", tmp_path / "kept" / "a"):
        proc = run_cli("train", "--data", missing, "--out", str(out), check=False)
        assert proc.returncode == 2 and "neither a known name" in proc.stderr
    assert not (tmp_path / "runs").exists() and (tmp_path / "kept").is_dir()
    assert list((tmp_path / "kept").iterdir()) == []
    # a folder holding only the archive is named before anything starts
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.tar.gz").write_bytes(b"")
    proc = run_cli("study", "run", "grid", "--data", str(tmp_path / "data"), "--db", str(db),
                   check=False)  # fmt: skip
    assert proc.returncode == 2 and "train.tar.gz: pass that file as the data" in proc.stderr
    assert not db.exists()


def test_a_report_says_first_how_many_runs_failed_and_why(tmp_path: Path) -> None:
    from squeezelab.analysis import build_report

    db = tmp_path / "f.db"
    with Store(db) as store:
        for lr in (0.1, 0.05):
            cfg = RunConfig(lr=lr)
            store.add_study("s", {"name": "s"}, [(cfg.key(), cfg.to_dict(), "run")])
        store.finish_run(RunConfig(lr=0.1).key(), {"val_acc": 50.0, "test_acc": 50.0}, [], {})
        store.fail_run(RunConfig(lr=0.05).key(), "Traceback ...\nValueError: out of luck")
    build_report(db, tmp_path / "r")
    md = (tmp_path / "r" / "report.md").read_text()
    first = md.split("\n## ")[1]
    assert first.startswith("1 of 2 runs failed") and "ValueError: out of luck" in first


def test_variants_cross_the_points_and_a_set_field_leaves_them() -> None:
    text = """
seeds = [0]
[[points]]
lr = 0.01
[[points]]
lr = 0.001
[[variants]]
augmentation = "pad-crop"
[[variants]]
augmentation = "random-resized-crop"
crop_scale = 0.25
"""
    spec = parse_study(text, "v")
    runs = spec.expand()
    assert {(c.lr, c.augmentation, c.crop_scale) for c in runs} == {
        (lr, aug, scale)
        for lr in (0.01, 0.001)
        for aug, scale in (("pad-crop", 0.08), ("random-resized-crop", 0.25))
    }
    fixed = spec.with_overrides({"augmentation": "resize-then-crop", "crop_scale": 0.08})
    assert {c.augmentation for c in fixed.expand()} == {"resize-then-crop"}
    assert len(fixed.expand()) == 2  # the variants collapse once the field is fixed
    with pytest.raises(ConfigError, match=r"\[\[variants\]\]: unknown field 'augment'"):
        parse_study("[[variants]]\naugment = 'x'\n", "v")


def test_forensic_plan_crosses_readings_cells_and_seeds() -> None:
    """The forensic study's plan (``--dry-run --json``): every reading at every published
    cell, over its seeds, one equivalence claim per reading holding its cells to the tables."""
    plan = last_json(run_cli("study", "run", "forensic", "--dry-run", "--json").stdout)
    runs = [r["config"] for r in plan["runs"]]
    readings = {(c["augmentation"], c["eval_transform"], c["normalization"]) for c in runs}
    cells = {(c["model"], c["batch_norm"], c["lr"], c["weight_decay"]) for c in runs}
    assert len(readings) == 6 and len(cells) == 5
    assert len(runs) == plan["total"] == 6 * 5 * 2  # two seeds
    assert ("pad-crop", "none", "imagenet") in readings  # squeezelab's default is one reading
    assert all(
        c["epochs"] == 10 and c["precision"] == "fp32" and c["batch_size"] == 64 for c in runs
    )
    for model, bn, lr, wd in cells:
        cfg = {"model": model, "batch_norm": bn, "lr": lr, "weight_decay": wd,
               "batch_size": 64, "momentum": 0.9, "fire_delta": 0, "init": None}  # fmt: skip
        tables = ("table_a1", "table_a3")
        assert any(published_value(published_runs(t), cfg) is not None for t in tables), cfg
    spec = load_study("forensic")
    assert len(plan["claims"]) == 6 and {c.test for c in spec.claims} == {"equivalence"}
    wheres = {tuple(v[0] for v in c.where.values()) for c in spec.claims}
    assert wheres == readings  # one claim per reading
    default = [r for r in plan["runs"] if r["config"]["augmentation"] == "pad-crop"
               and r["config"]["normalization"] == "imagenet"
               and r["config"]["eval_transform"] == "none"]  # fmt: skip
    # Naming the default reading changes no key: a grid run at the same cell is the same run.
    unnamed = ("augmentation", "eval_transform", "normalization", "crop_scale")
    for r in default:
        bare = from_dict({k: v for k, v in r["config"].items() if k not in unnamed})
        assert r["key"] == run_key(bare)


def test_forensic_alexnet_plan_crosses_pools_readings_and_cells() -> None:
    """The AlexNet forensic study: two pools under two readings at three Table A1 cells, one
    claim per (pool, reading); its torchvision-pool runs are the forensic study's (same keys)."""
    plan = last_json(run_cli("study", "run", "forensic-alexnet", "--dry-run", "--json").stdout)
    runs = [r["config"] for r in plan["runs"]]
    variants = {(c["avgpool"], c["augmentation"], c["eval_transform"]) for c in runs}
    cells = {(c["lr"], c["momentum"], c["weight_decay"]) for c in runs}
    assert len(variants) == 4 and len(cells) == 3 and plan["total"] == len(runs) == 4 * 3 * 2
    assert {c["model"] for c in runs} == {"alexnet"}
    published = []
    for lr, momentum, wd in sorted(cells):
        cfg = {"model": "alexnet", "batch_norm": False, "lr": lr, "momentum": momentum,
               "weight_decay": wd, "batch_size": 64, "fire_delta": 0, "init": None}  # fmt: skip
        published.append(published_value(published_runs("table_a1"), cfg))
    assert published == [10.0, 22.67, 40.74]  # chance, weak, learned
    spec = load_study("forensic-alexnet")
    assert len(plan["claims"]) == 4 and {c.test for c in spec.claims} == {"equivalence"}
    assert {tuple(v[0] for v in c.where.values()) for c in spec.claims} == variants
    forensic = last_json(run_cli("study", "run", "forensic", "--only", "model=alexnet",
                                 "--dry-run", "--json").stdout)  # fmt: skip
    shared = {r["key"] for r in forensic["runs"]} & {r["key"] for r in plan["runs"]}
    # Both readings at lr 0.01 with torchvision's pool, over both seeds.
    assert len(shared) == 4
