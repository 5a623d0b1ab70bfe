"""Presets and the plans they make: the faithful (paper) and sound (rigorous) protocols, the
one precedence rule (study file < preset [all] < preset [STUDY] < --data < --set)."""

from __future__ import annotations

from pathlib import Path

from squeezelab.reproduce import plan_json, resolve

from .conftest import last_json, run_cli


def test_paper_plan_equals_the_study_field_by_field() -> None:
    plan = plan_json("paper", resolve("paper"))
    s = plan["studies"]
    assert {k: v["runs"] for k, v in s.items()} == {
        "grid": 108, "compare": 12, "macro": 45, "batchnorm": 30, "transfer": 18,
    }  # fmt: skip
    every = [c for v in s.values() for c in v["configs"]]
    assert {c["data"] for c in every} == {"cifar10"} and {c["precision"] for c in every} == {"fp32"}
    assert {c["image_size"] for c in every} == {64}
    grid = s["grid"]["configs"]
    assert {c["epochs"] for c in grid} == {10} and {c["scheduler"] for c in grid} == {"none"}
    assert {(c["batch_size"], c["lr"], c["momentum"], c["weight_decay"]) for c in grid} == {
        (b, lr, m, wd)
        for b in (64, 512, 1024)
        for lr in (0.05, 0.01, 0.001)
        for m in (0.9, 0.5, 0.1)
        for wd in (0.0, 0.0002)
    }
    compare = {
        (c["model"], c["scheduler"], c["batch_size"], c["lr"], c["momentum"], c["weight_decay"])
        for c in s["compare"]["configs"]
    }
    assert compare == {
        ("alexnet", "step", 64, 0.01, 0.9, 0.0),  # Table 3
        ("squeezenet1_0", "step", 64, 0.001, 0.9, 0.0002),
        ("alexnet", "plateau", 64, 0.0125, 0.5, 0.0),  # section 5.2
        ("squeezenet1_0", "plateau", 64, 0.01, 0.1, 0.0),
    }
    for c in s["compare"]["configs"]:
        assert c["epochs"] == 50 and c["test_each_epoch"]
        if c["scheduler"] == "step":
            assert (c["step_size"], c["step_gamma"]) == (10, 0.1)
        else:
            assert (c["plateau_patience"], c["plateau_factor"]) == (3, 0.5)
    macro = {(c["fire_delta"], c["lr"], c["momentum"]) for c in s["macro"]["configs"]}
    assert len(macro) == 45 and {d for d, _, _ in macro} == {-2, -1, 0, 1, 2}
    bn = s["batchnorm"]["configs"]
    assert {c["lr"] for c in bn if c["batch_norm"]} == {0.2, 0.1, 0.05, 0.01, 0.001}
    assert {c["init"] for c in s["transfer"]["configs"]} == {"imagenet", None}
    assert "deviations" in plan["protocol"]


def test_precedence_preset_then_data_then_set() -> None:
    assert {c.data for s in resolve("paper") for c in s.expand()} == {"cifar10"}
    assert {c.data for s in resolve("quick") for c in s.expand()} == {"synthetic"}
    mine = resolve("paper", data="mine.tar")
    assert {c.data for s in mine for c in s.expand()} == {"mine.tar"}
    both = resolve("paper", data="mine.tar", overrides={"data": "other.zip", "epochs": 1})
    assert {(c.data, c.epochs) for s in both for c in s.expand()} == {("other.zip", 1)}


def test_every_layer_overrides_the_one_below_by_one_rule(tmp_path: Path) -> None:
    # the path `reproduce` takes: a study file under a preset's layers, then --data / --set
    from squeezelab.studies.presets import preset_layers
    from squeezelab.studies.spec import load_study

    path = tmp_path / "mine.toml"
    path.write_text(
        "seeds = [0]\n[base]\nlr = 0.1\nepochs = 5\n[axes]\nbatch_size = [32, 64]\n"
        'momentum = [0.5, 0.9]\n[[points]]\nmodel = "alexnet"\nlr = 0.2\n'
        '[best_of]\nstudy = "grid"\nfields = ["lr"]\n'
    )
    study = load_study(str(path))
    assert {(r.model, r.lr, r.epochs) for r in study.expand()} == {("alexnet", 0.2, 5)}
    preset = {
        "protocol": {"name": "p"},
        "all": {"lr": 0.3, "epochs": 2, "momentum": 0.8},  # fixes lr everywhere, points too
        "mine": {"epochs": 3, "axes": {"batch_size": [16], "momentum": [0.7, 0.6]}, "seeds": [4]},
    }
    spec = load_study(str(path), preset_layers("mine", preset), preset["protocol"])
    runs = spec.expand()
    # [STUDY] beats [all] (epochs 3, its own momentum axis), [all] beats the file (lr 0.3).
    assert {(r.lr, r.epochs, r.batch_size, r.seed) for r in runs} == {(0.3, 3, 16, 4)}
    assert {r.momentum for r in runs} == {0.7, 0.6} and spec.protocol == {"name": "p"}
    # --data and --set go on top, and keep the protocol.
    layers = [*preset_layers("mine", preset), ("--data / --set", {"data": "synthetic:300"})]
    top = load_study(str(path), layers, preset["protocol"]).with_overrides({"momentum": 0.9})
    assert {(r.data, r.momentum) for r in top.expand()} == {("synthetic:300", 0.9)}
    assert len(top.expand()) == 1 and top.protocol == {"name": "p"}
    assert study.best_of is not None
    off = load_study(str(path), preset_layers("mine", {"mine": {"best_of": False}}))
    assert off.best_of is None


def test_dry_run_cli_lists_the_runs() -> None:
    plan = last_json(run_cli("reproduce", "--preset", "rigorous", "--dry-run", "--json").stdout)
    assert plan["studies"]["compare"]["runs"] == 40  # 2 models x 2 schedulers x 10 seeds
    assert plan["total_runs"] == sum(s["runs"] for s in plan["studies"].values())
