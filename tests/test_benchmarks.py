"""The benchmark scripts' JSON (tiny runs; the figures themselves are measured by hand)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, load_benchmark


def test_time_to_targets_takes_the_first_epoch_reaching_each() -> None:
    tta = load_benchmark("time_to_accuracy")
    history = [
        {"epoch_s": 10.0, "val_acc": 60.0},
        {"epoch_s": 12.0, "val_acc": 76.0},
        {"epoch_s": 11.0, "val_acc": 74.0},
        {"epoch_s": 9.0, "val_acc": 81.0},
    ]
    assert tta.time_to_targets(history, [70, 75, 80, 85]) == {
        "70": {"epoch": 2, "seconds": 22.0},
        "75": {"epoch": 2, "seconds": 22.0},
        "80": {"epoch": 4, "seconds": 42.0},
        "85": None,
    }


def test_time_to_accuracy_prints_one_json_object(tmp_path: Path, capsys) -> None:
    tta = load_benchmark("time_to_accuracy")
    sets = ["epochs=2", "image_size=32", "batch_size=32", "batch_norm=true", "lr=0.05"]
    args = ["--data", "synthetic:200", "--targets", "1,99.5", "--out", str(tmp_path)]
    summary = tta.main(args + [a for s in sets for a in ("--set", s)])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == summary
    assert summary["recipe"] == "modern@1" and summary["epochs"] == 2
    assert summary["data"] == "synthetic:200"  # what it trained on is in the JSON
    assert summary["time_to"]["1"] == {"epoch": 1, "seconds": summary["curve"][0][0]}
    assert summary["time_to"]["99.5"] is None
    assert Path(summary["png"]).stat().st_size > 1000
    assert summary["final_val_acc"] == summary["curve"][-1][1]


@pytest.mark.parametrize("name", ["time_to_accuracy", "train_throughput"])
def test_a_benchmark_without_the_shared_data_says_it_times_synthetic_data(
    name: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    bench = load_benchmark(name)
    monkeypatch.setattr(bench, "DEFAULT_DATA", tmp_path / "missing.tar.gz")
    assert bench.default_data() == "synthetic"
    assert f"{tmp_path / 'missing.tar.gz'} not found: timing on synthetic data" in (
        capsys.readouterr().err
    )
    monkeypatch.setattr(bench, "DEFAULT_DATA", tmp_path)  # present: used, silently
    assert bench.default_data() == str(tmp_path) and capsys.readouterr().err == ""


def test_time_to_accuracy_from_a_store_gives_each_model_its_seeds_median(
    tmp_path: Path, capsys
) -> None:
    """--db trains nothing: per model, the median time over the seeds that reached a target
    and how many did, from the epoch times the store holds; a run two studies hold counts once."""
    from squeezelab.results import Store
    from squeezelab.training import RunConfig

    tta = load_benchmark("time_to_accuracy")
    curves = {0: [50.0, 72.0, 81.0], 1: [40.0, 60.0, 71.0], 2: [65.0, 75.0, 79.0]}
    with Store(tmp_path / "s.db") as store:
        for seed, accs in curves.items():
            cfg = RunConfig(seed=seed, batch_norm=seed == 2)
            for study in ("a", "b"):
                store.add_study(study, {"name": study}, [(cfg.key(), cfg.to_dict(), "run")])
            history = [
                {"epoch": i + 1, "val_acc": v, "epoch_s": 100.0 * (seed + 1)}
                for i, v in enumerate(accs)
            ]
            result = {"val_acc": accs[-1], "test_acc": accs[-1], "epochs": 3, "train_s": 1.0}
            store.finish_run(cfg.key(), result, history, {"threads": 1, "device_name": "cpu"})
    out = tta.main(["--db", str(tmp_path / "s.db"), "--targets", "70,80", "--out", str(tmp_path)])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == out
    plain, bn = out["models"]["squeezenet1_0"], out["models"]["squeezenet1_0 + BN"]
    assert plain["runs"] == 2 and bn["runs"] == 1
    # seed 0 reaches 70% after 2 epochs of 100 s, seed 1 after 3 of 200 s: median 400 s
    seventy = {"reached": "2 of 2", "median_s": 400.0, "range_s": [200.0, 600.0]}
    assert plain["time_to_median"]["70"] == seventy
    eighty = {"reached": "1 of 2", "median_s": 300.0, "range_s": [300.0, 300.0]}
    assert plain["time_to_median"]["80"] == eighty
    assert bn["time_to_median"]["80"] == {"reached": "0 of 1", "median_s": None, "range_s": None}
    assert plain["per_run"][1]["threads"] == 1 and Path(out["png"]).stat().st_size > 1000
    with pytest.raises(SystemExit, match="--study c: not in"):
        tta.main(["--db", str(tmp_path / "s.db"), "--study", "c", "--out", str(tmp_path)])
    with Store(tmp_path / "s.db") as store:  # a second rate: each condition is its own group
        cfg = RunConfig(seed=0, lr=0.1)
        store.add_study("a", {"name": "a"}, [(cfg.key(), cfg.to_dict(), "run")])
        history = [{"epoch": 1, "val_acc": 90.0, "epoch_s": 5.0}]
        cpu = {"threads": 1, "device_name": "cpu"}
        store.finish_run(cfg.key(), {"val_acc": 90.0, "epochs": 1}, history, cpu)
    out = tta.main(["--db", str(tmp_path / "s.db"), "--targets", "70", "--out", str(tmp_path)])
    assert out["models"]["squeezenet1_0 (lr=0.1)"]["time_to_median"]["70"]["median_s"] == 5.0
    assert out["models"]["squeezenet1_0 (lr=0.01)"]["runs"] == 2
    with Store(tmp_path / "s.db") as store:  # a run from a GPU (a merged store): timed apart
        cfg = RunConfig(seed=1, lr=0.1)
        store.add_study("a", {"name": "a"}, [(cfg.key(), cfg.to_dict(), "run")])
        history = [{"epoch": 1, "val_acc": 90.0, "epoch_s": 0.5}]
        gpu = {"device": "cuda:0", "device_name": "NVIDIA H100", "precision": "bf16"}
        store.finish_run(cfg.key(), {"val_acc": 90.0, "epochs": 1}, history, gpu)
    out = tta.main(["--db", str(tmp_path / "s.db"), "--targets", "70", "--out", str(tmp_path)])
    times = {name: m["time_to_median"]["70"]["median_s"] for name, m in out["models"].items()}
    assert times["squeezenet1_0 (lr=0.1) [cpu, 1 thread]"] == 5.0
    assert times["squeezenet1_0 (lr=0.1) [NVIDIA H100, bf16]"] == 0.5
    (tmp_path / "bad.db").write_text("not a store")
    with pytest.raises(SystemExit, match="bad.db is not a usable squeezelab store"):
        tta.main(["--db", str(tmp_path / "bad.db"), "--out", str(tmp_path)])


@pytest.mark.slow
def test_study_throughput_prints_rates_and_projections(tmp_path: Path) -> None:
    import subprocess

    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "study_throughput.py"), "--steps", "2",
         "--warmup", "1", "--packed", "2", "--presets", "quick"],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(out["models"]) == {"squeezenet1_0", "squeezenet1_0_bn", "alexnet"}
    for per_precision in out["models"].values():
        for rates in per_precision.values():
            assert rates["train_img_s"] > 0 and rates["packed_train_img_s"] > 0
            assert rates["epoch_s"] > 45_000 / rates["train_img_s"]
    quick = out["presets"]["quick"]
    assert quick["runs"] == 44 and quick["run_epochs"] == 138
    assert quick["projected_h"] == min(quick["projected_h_alone"], quick["projected_h_packed"])


@pytest.mark.slow
def test_gpu_modern_script_runs_every_study_into_one_archive(tmp_path: Path) -> None:
    """The lent-GPU script: by default it runs modern-compare and every search stage from 4
    on; dry-run on synthetic data over three of them (STUDIES), one store holds them, runs the
    stages share with modern-compare are trained once, and the archive and claims come back."""
    import os
    import re
    import subprocess
    import tarfile

    from squeezelab.results import Store
    from squeezelab.studies import builtin_studies

    script = (ROOT / "benchmarks" / "gpu_modern.sh").read_text()
    default = re.search(r"\$\{STUDIES:-([^}]*)\}", script).group(1).split()
    stages = [
        n
        for n in builtin_studies(research=True)
        if re.fullmatch(r"research/modern-search-([4-9]|\d\d+)", n)
    ]
    assert set(default) == {"modern-compare", *stages} and default[0] == "modern-compare"
    # research stages by their full name and by the bare name that older scripts use
    studies = ["modern-compare", "research/modern-search-6", "modern-search-8"]
    out = tmp_path / "out"
    env = {
        **os.environ,
        "OUT": str(out),
        "DATA": "synthetic:100",
        "PER_DEVICE": "2",
        "STUDIES": " ".join(studies),
        "EXTRA": "--set epochs=1 --set seeds=0 --set image_size=64",
    }
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_modern.sh")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert all(f"{study}: exit 0" in proc.stdout for study in studies)
    with tarfile.open(out / "modern.tgz") as tar:
        tar.extractall(tmp_path / "x", filter="data")
    with Store(tmp_path / "x" / "runs.db") as store:
        assert set(store.studies()) == {s.removeprefix("research/") for s in studies}
        assert len(store.runs("modern-compare")) == 4
        compare = {r.key for r in store.runs("modern-compare")}
        # stage 6's cells at the recipe's rate are modern-compare's plain 1.0 and 1.1; stage
        # 8's recipe cell is its AlexNet
        for stage, shared in (("modern-search-6", 2), ("modern-search-8", 1)):
            assert len(compare & {r.key for r in store.runs(stage)}) == shared
    claims = json.loads((out / "claims.json").read_text())
    assert claims
    # A second call going on from the first's store (STORE) trains nothing it finished
    again = {**env, "OUT": str(tmp_path / "again"), "STORE": str(tmp_path / "x" / "runs.db")}
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_modern.sh")],
        cwd=ROOT, env=again, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "going on from" in proc.stdout and "epoch 1/1" not in proc.stdout + proc.stderr
    for study in studies:  # the log names a study by its name in the store: its stem
        name = study.removeprefix("research/")
        assert re.search(rf"{name}: \d+ runs, (\d+) already finished, 0 to run", proc.stdout)
    missing = {**env, "OUT": str(tmp_path / "m"), "STORE": str(tmp_path / "none.db")}
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_modern.sh")],
        cwd=ROOT, env=missing, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "no store at" in proc.stderr


def test_sequential_replay_reads_a_store_in_seed_order(tmp_path: Path) -> None:
    import subprocess

    from .conftest import store_builtin

    db = tmp_path / "s.db"
    # batch norm far ahead of plain SqueezeNet in every seed; the other models level with it
    store_builtin(db, "modern-compare", lambda c: 70.0 + 15.0 * c.batch_norm + 0.3 * c.seed)
    out = json.loads(
        subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "sequential_replay.py"), "--db", str(db),
             "--study", "modern-compare", "--first", "3"],
            capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    assert out["runs"] == 20 and out["max_seeds"] == 5 and out["first_seeds"] == 3
    # every claim clears its first look: 3 of the 5 seeds of each model ran, no more
    assert [look["seeds"] for look in out["looks"]] == [3]
    assert (
        set(out["verdicts"].values()) == {"supported"} == set(out["fixed_design_verdicts"].values())
    )
    assert out["looks"][0]["claims"]["modern-bn"]["level"] < 0.05  # spent, not the whole alpha
    assert (out["run_epochs"], out["fixed_run_epochs"]) == (4 * 3 * 30, 4 * 5 * 30)


# --- the sequential design's calibration ------------------------------------------------------


def test_no_procedure_beats_the_information_bound_and_the_fixed_design_respects_it() -> None:
    """The bound is a lower bound: the fixed design's own seeds (and the sequential one's
    expected seeds) sit above the least any procedure with their decision rates could use."""
    import numpy as np

    from squeezelab.analysis.sequential import SequentialDesign

    cal = load_benchmark("verdict_calibration")
    setup = {"seed_sd": 1.5, "cond_sd": 3.0, "effect_sd": 2.0, "stall": 0.0}
    for design in (SequentialDesign(8, 8), SequentialDesign(3, 9)):
        row, verdicts = cal._cases(2000, 0, setup, "chance", design)
        least = cal.least_seeds(verdicts, setup["seed_sd"])
        for case in cal.CASES:
            assert 0 < least[case] < row[f"seeds_used_at_{case}"]
    # A procedure that always says the same thing learns nothing: it needs no seeds at all.
    same = {c: np.full(100, "inconclusive", dtype=object) for c in cal.CASES}
    assert max(cal.least_seeds(same, 1.5).values()) == pytest.approx(0.0, abs=1e-12)
    # Deciding perfectly between effects 0 and min_effect costs more as the seeds vary more.
    perfect = {"null": np.full(100, "contradicted", dtype=object),
               "min_effect": np.full(100, "supported", dtype=object),
               "1.5x": np.full(100, "supported", dtype=object)}  # fmt: skip
    assert cal.least_seeds(perfect, 3.0)["null"] == pytest.approx(
        4 * cal.least_seeds(perfect, 1.5)["null"]
    )


def test_curtailing_a_claim_only_removes_decisions() -> None:
    """Giving a claim up is never a decision: with the same simulated seeds, every verdict a
    curtailed design reaches the plain design reaches too, at the same look or later."""
    import numpy as np

    from squeezelab.analysis.sequential import SequentialDesign

    cal = load_benchmark("verdict_calibration")
    setup = {"seed_sd": 1.5, "cond_sd": 3.0, "effect_sd": 2.0, "stall": 0.0}
    design = SequentialDesign(3, 9)
    for effect in (0.0, 2.0):
        plain, used = cal.run_design(np.random.default_rng(5), 3000, effect, setup, "chance",
                                     design)  # fmt: skip
        for how in ("support", "either"):
            cut, cut_used = cal.run_design(np.random.default_rng(5), 3000, effect, setup,
                                           "chance", design, cal.Variant(curtail=how))  # fmt: skip
            decided = cut != "inconclusive"
            assert (cut[decided] == plain[decided]).all()
            assert (cut_used <= used).all()
        assert (cut_used < used).any()  # it does give some claims up


def test_sequential_replay_of_a_part_counts_the_claims_it_left_out_in_both_designs() -> None:
    """p 0.038 with one claim left to another part of the family: Holm's first step is alpha/2,
    so neither the replayed looks nor the fixed design may read it as supported at alpha."""
    from collections import Counter

    from squeezelab.results import RunRecord
    from squeezelab.studies.spec import parse_study
    from squeezelab.training import RunConfig

    from .test_sequential import SEQ_STUDY

    replay = load_benchmark("sequential_replay")
    claims = list(parse_study(SEQ_STUDY, "seq").claims)
    accs = {True: [61.0, 63.0, 60.0, 62.5], False: [59.5, 60.0, 58.0, 61.0]}
    runs = [
        RunRecord.of(f"{bn}{seed}", RunConfig(seed=seed, batch_norm=bn).to_dict(), "done",
                     test_acc=acc, val_acc=acc)
        for bn, values in accs.items()
        for seed, acc in enumerate(values)
    ]  # fmt: skip
    rule_of = {c.id: c.diverged for c in claims}
    alone = replay.replay(claims, runs, 4, "obrien-fleming", rule_of)
    part = replay.replay(claims, runs, 4, "obrien-fleming", rule_of, Counter({"claims": 1}))
    assert alone["verdicts"] == alone["fixed_design_verdicts"] == {"bn": "supported"}
    assert part["verdicts"] == part["fixed_design_verdicts"] == {"bn": "inconclusive"}
    assert part["looks"][0]["claims"]["bn"]["level"] == pytest.approx(0.025)
