"""Recipes (named, versioned run fields), weight EMA and flip test-time augmentation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from squeezelab.data import Batches, Preprocess, make_synthetic
from squeezelab.models import get_model, variant_of
from squeezelab.studies import load_study
from squeezelab.studies.spec import parse_study
from squeezelab.training import ConfigError, from_dict, load_checkpoint, train
from squeezelab.training import loop as loop_module
from squeezelab.training.loop import evaluate
from squeezelab.training.recipes import check_versions, recipe_fields, recipes

from .conftest import last_json, modern_v2, run_cli

TINY = {"data": "synthetic:100", "image_size": 32, "batch_size": 32, "epochs": 1}


def test_recipe_fills_what_the_run_does_not_set() -> None:
    modern = recipes()["modern"]
    cfg = from_dict({"recipe": "modern", "batch_norm": True})
    assert cfg.recipe == f"modern@{modern['version']}"
    assert cfg.lr == modern["models"]["squeezenet1_0+bn"]["lr"]
    assert (cfg.scheduler, cfg.nesterov, cfg.epochs) == ("onecycle", True, 30)
    plain = from_dict({"recipe": "modern"})  # without batch norm: its own section
    assert plain.lr == modern["models"]["squeezenet1_0"]["lr"]
    assert from_dict({"recipe": "modern", "lr": 0.003}).lr == 0.003  # the run's own value wins
    study = from_dict({"recipe": "study", "model": "alexnet"})
    assert (study.lr, study.scheduler, study.epochs) == (0.01, "none", 10)


def test_recipe_precedence_recipe_then_study_file_then_set() -> None:
    spec = parse_study(
        '[base]\nrecipe = "modern"\nlr = 0.07\n[axes]\nmodel = ["squeezenet1_0", "alexnet"]\n',
        "mine",
    )
    runs = {r.model: r for r in spec.expand()}
    assert {r.lr for r in runs.values()} == {0.07}  # the file beats the recipe
    assert {r.weight_decay for r in runs.values()} == {0.0005}  # the recipe fills the rest
    top = spec.with_overrides({"lr": 0.01, "epochs": 2})  # --set beats both
    assert {(r.lr, r.epochs, r.recipe) for r in top.expand()} == {(0.01, 2, "modern@1")}


def test_the_modern_studies_search_then_compare_at_the_recipe() -> None:
    stage1, stage2 = load_study("modern-search").expand(), load_study("modern-search-2").expand()
    compare = load_study("modern-compare")
    version = f"modern@{recipes()['modern']['version']}"
    for runs in (stage1, stage2, compare.expand()):
        assert {r.recipe for r in runs} == {version}
    # Stage 1: every model's peak rate on a short budget. Stage 2, at the comparison's
    # 10-epoch budget: plain SqueezeNet's rate and EMA, two seeds per cell (a rate that kills
    # one seed must lose); its cells at the recipe's values are the comparison's own runs.
    assert len(stage1) == 4 * 5 and {r.train_subset for r in stage1} == {10000}
    assert len(stage2) == 4 * 2 and {r.train_subset for r in stage2} == {None}
    assert {r.seed for r in stage2} == {0, 1} and {r.epochs for r in stage2} == {10}
    assert {(r.model, r.batch_norm, r.lr, r.ema_decay) for r in stage2} >= {
        ("squeezenet1_0", False, 0.025, 0.0),
        ("squeezenet1_0", True, 0.1, 0.999),
    }
    short = load_study("modern-compare", [("--set", {"epochs": 10, "seeds": [0, 1]})])
    shared = {r.key() for r in stage2} & {r.key() for r in short.expand()}
    assert len(shared) == 2 * 2  # plain 1.0 and 1.0 + BN at the recipe's values; two seeds
    # Stage 3: SqueezeNet 1.0 + BN only, one field moved at a time from the recipe's own cell
    # (batch size moves with its linearly scaled rate), which is stage 2's run.
    stage3 = load_study("modern-search-3").expand()
    assert len(stage3) == 6 * 2 and {(r.model, r.batch_norm, r.epochs) for r in stage3} == {
        ("squeezenet1_0", True, 10)
    }
    assert len({r.key() for r in stage3} & {r.key() for r in stage2}) == 2
    own = next(r for r in stage3 if r.key() in {s.key() for s in stage2}).to_dict()
    moved = set()
    for run in stage3:
        changed = {k for k, v in run.to_dict().items() if v != own[k]} - {"seed"}
        assert changed in (set(), {"batch_size", "lr"}, {"scheduler", "warmup_epochs"}) or (
            len(changed) == 1
        )
        moved |= changed
    assert moved == {
        "batch_size",
        "lr",
        "scheduler",
        "warmup_epochs",
        "weight_decay",
        "label_smoothing",
        "nesterov",
    }
    # Stages 4 to 6: plain SqueezeNet 1.0's and 1.1's rates at the recipe's own 30 epochs;
    # each cell at the recipe's rate is modern-compare's runs of that model, and stage 6's
    # 0.025 cells extend stages 4's and 5's (only their new seeds are new runs).
    compare_keys = {r.key() for r in compare.expand()}
    plain = ("squeezenet1_0", "squeezenet1_1")
    stages = {}
    for stage, models, rates, seeds in (
        ("modern-search-4", plain[:1], {0.025, 0.05}, {0, 1, 2}),
        ("modern-search-5", plain[1:], {0.025, 0.05, 0.1}, {0, 1}),
        ("modern-search-6", plain, {0.025, 0.05}, {0, 1, 2, 3, 4}),
    ):
        runs = stages[stage] = load_study(stage).expand()
        assert {(r.model, r.batch_norm, r.epochs, r.train_subset) for r in runs} == {
            (m, False, 30, None) for m in models
        }
        assert {r.lr for r in runs} == rates and {r.seed for r in runs} == seeds
        own = {m: recipe_fields("modern", m)["lr"] for m in models}
        shared = {r.key() for r in runs if r.lr == own[r.model]}
        assert {r.key() for r in runs} & compare_keys == shared
    earlier = {r.key() for s in ("modern-search-4", "modern-search-5") for r in stages[s]}
    new = [r for r in stages["modern-search-6"] if r.key() not in earlier | compare_keys]
    assert sorted((r.model, r.lr, r.seed) for r in new) == [
        ("squeezenet1_0", 0.025, 3),
        ("squeezenet1_0", 0.025, 4),
        ("squeezenet1_1", 0.025, 2),
        ("squeezenet1_1", 0.025, 3),
        ("squeezenet1_1", 0.025, 4),
    ]
    # Stages 7 and 8: SqueezeNet 1.0 + BN, then AlexNet, at 30 epochs, one field moved at a
    # time; each recipe cell is modern-compare's own seeds, so only the moved cells are new.
    for stage, model, bn, seeds, moves in (
        ("modern-search-7", "squeezenet1_0", True, 3, [("dropout", 0.0), ("lr", 0.2)]),
        ("modern-search-8", "alexnet", False, 2, [("weight_decay", 0.001), ("lr", 0.025)]),
    ):
        runs = load_study(stage).expand()
        assert {(r.model, r.batch_norm, r.epochs, r.train_subset) for r in runs} == {
            (model, bn, 30, None)
        }
        assert {r.seed for r in runs} == set(range(seeds))
        own = recipe_fields("modern", model, variant_of(model, {"batch_norm": bn}))
        shared = [r for r in runs if r.key() in compare_keys]
        assert len(shared) == seeds and all(r.lr == own["lr"] for r in shared)
        new = sorted(
            (k, v, r.seed)
            for r in runs
            if r.key() not in compare_keys
            for k, v in r.to_dict().items()
            if v != shared[0].to_dict()[k] and k != "seed"
        )
        assert new == sorted((k, v, s) for k, v in moves for s in range(seeds))
    # The comparison: four models at their own rates, 5 seeds, three declared claims.
    runs = compare.expand()
    assert len(runs) == 4 * 5 and {r.epochs for r in runs} == {30}
    rates = {(r.model, r.batch_norm): r.lr for r in runs}
    bn_lr = recipe_fields("modern", "squeezenet1_0", "squeezenet1_0+bn")["lr"]
    assert rates[("squeezenet1_0", True)] == bn_lr
    assert {c.id for c in compare.claims} == {"modern-alexnet-level", "modern-bn", "modern-size"}
    assert all(c.published or c.id == "modern-size" for c in compare.claims)


def test_unknown_or_other_version_recipes_are_named() -> None:
    with pytest.raises(ConfigError, match="unknown recipe 'fancy'; recipes: none, modern"):
        from_dict({"recipe": "fancy"})
    with pytest.raises(ConfigError, match="ships modern@1 only"):
        from_dict({"recipe": "modern@7"})
    assert from_dict({"recipe": "modern@1"}).recipe == "modern@1"


def test_a_run_made_with_another_version_stays_as_it_was(tmp_path: Path) -> None:
    """After a recipe's version changes, a stored run's config (every field resolved) still
    loads, to resume, evaluate or compress, with its key unchanged; a bare name does not."""
    run = from_dict({"recipe": "modern", "batch_norm": True, "lr": 0.3})
    stored = {**run.to_dict(), "recipe": "modern@0"}  # as an older squeezelab wrote it
    again = from_dict(stored)
    assert again.to_dict() == stored and again.recipe == "modern@0" and again.lr == 0.3
    assert again.key() != run.key()  # another version is another run
    with pytest.raises(ConfigError, match="ships modern@1 only"):
        from_dict({"recipe": "modern@0", "batch_norm": True})  # fields left to a lost version


def test_a_new_version_moves_only_the_models_it_changed(monkeypatch) -> None:
    """Versions are per model: a version that changes 1.0 + BN's fields gives its runs new
    keys and leaves every other model's runs (and keys) as they were, under any name."""
    before = {
        (m, bn): from_dict({"recipe": "modern", "model": m, "batch_norm": bn})
        for m, bn in (("squeezenet1_0", False), ("squeezenet1_0", True), ("alexnet", False))
    }
    check_versions(modern_v2(monkeypatch), "modern.toml")
    for (model, bn), old in before.items():
        new = from_dict({"recipe": "modern", "model": model, "batch_norm": bn})
        if bn:  # the changed model: its version, its new field, a new run
            assert new.recipe == "modern@2" and new.dropout == 0.0 and new.key() != old.key()
            assert "since" not in recipe_fields(
                "modern", model, variant_of(model, {"batch_norm": bn})
            )
        else:  # unchanged since version 1: the same run, whichever current version is named
            assert new.recipe == "modern@1" and new.key() == old.key()
            for name in ("modern@1", "modern@2"):
                assert from_dict({"recipe": name, "model": model}).key() == old.key()
    # 1.0 + BN as version 1 had it: gone, unless the run holds every field (a stored run)
    with pytest.raises(ConfigError, match="where squeezenet1_0\\+bn's fields date from modern@2"):
        from_dict({"recipe": "modern@1", "batch_norm": True})
    stored = before[("squeezenet1_0", True)]
    assert from_dict(stored.to_dict()).key() == stored.key()
    with pytest.raises(ConfigError, match="ships modern@2 only"):
        from_dict({"recipe": "modern@3", "model": "alexnet"})


def test_a_recipe_file_whose_versions_do_not_fit_is_refused(monkeypatch) -> None:
    raw = modern_v2(monkeypatch)
    raw["models"]["squeezenet1_0+bn"]["since"] = 3
    with pytest.raises(ConfigError, match=r"\[models.squeezenet1_0\+bn\] since must be a whole"):
        check_versions(raw, "modern.toml")
    raw["models"]["squeezenet1_0+bn"]["since"] = 1  # version 2 changed nothing
    with pytest.raises(ConfigError, match="no model's fields changed in it"):
        check_versions(raw, "modern.toml")
    with pytest.raises(ConfigError, match="version '2' is no whole number"):
        check_versions({**raw, "version": "2"}, "modern.toml")


def test_recipe_is_recorded_in_the_run(tmp_path: Path) -> None:
    out = tmp_path / "r"
    run_cli("train", "--recipe", "modern", "--data", "synthetic:100", "--epochs", "1",
            "--image-size", "32", "--batch-size", "32", "--out", str(out))  # fmt: skip
    recipe = json.loads((out / "config.json").read_text())
    fields = recipe_fields("modern", "squeezenet1_0")
    assert recipe["config"]["recipe"] == "modern@1"
    assert recipe["config"]["weight_decay"] == fields["weight_decay"]
    assert recipe["config"]["lr"] == fields["lr"] and recipe["config"]["epochs"] == 1


def test_ema_weights_follow_the_formula_and_are_what_is_saved(tmp_path: Path, monkeypatch) -> None:
    """The saved model is the average e_k = d e_(k-1) + (1 - d) w_k of the weights after each
    step (e_1 = w_1), and training itself is unchanged by keeping it."""
    decay = 0.6
    seen: list[dict[str, torch.Tensor]] = []
    real = loop_module.train_step

    def record(model, *args, **kwargs):
        out = real(model, *args, **kwargs)
        seen.append({k: v.detach().clone() for k, v in model.named_parameters()})
        return out

    base = {**TINY, "model": "squeezenet1_1", "lr": 0.01}
    monkeypatch.setattr(loop_module, "train_step", record)
    plain = train(from_dict(base), tmp_path / "plain", verbose=False)
    monkeypatch.setattr(loop_module, "train_step", real)
    averaged = train(
        from_dict({**base, "ema_decay": decay}), tmp_path / "ema", verbose=False,
        keep_checkpoint=True,
    )  # fmt: skip
    assert averaged.history[0]["train_loss"] == plain.history[0]["train_loss"]
    expected = dict(seen[0])
    for step in seen[1:]:
        expected = {k: decay * expected[k] + (1 - decay) * step[k] for k in expected}
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "ema" / "model.safetensors")
    for name, value in expected.items():
        torch.testing.assert_close(saved[name], value, rtol=1e-5, atol=1e-6)
    state = load_checkpoint(tmp_path / "ema" / "checkpoint.safetensors")
    assert not torch.equal(state.model["features.0.weight"], saved["features.0.weight"])
    assert len(seen) >= 2


def test_flip_tta_averages_the_logits_of_each_image_and_its_mirror() -> None:
    torch.manual_seed(0)
    model = get_model("squeezenet1_1", num_classes=10).eval()
    batches = Batches.of(make_synthetic(40, seed=3), 16, Preprocess(32))
    loss, acc, n = evaluate(model, batches, torch.device("cpu"), "fp32", flip=True)
    logits, labels = [], []
    with torch.no_grad():
        for x, y in batches:
            logits.append((model(x) + model(torch.flip(x, dims=[3]))) / 2)
            labels.append(y)
    logits, labels = torch.cat(logits), torch.cat(labels)
    assert n == 40
    assert acc == pytest.approx(100.0 * (logits.argmax(1) == labels).float().mean().item())
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item(), rel=1e-5)
    plain = evaluate(model, batches, torch.device("cpu"), "fp32")
    assert plain[0] != pytest.approx(loss)  # the mirror images do change the logits


def test_train_dry_run_names_where_each_field_comes_from(tmp_path: Path) -> None:
    """`train --dry-run` resolves the recipe as a real run would, says which fields a flag,
    the recipe or the default set, and writes nothing."""
    out = tmp_path / "run"
    args = ("train", "--recipe", "modern", "--batch-norm", "--epochs", "20", "--out", str(out))
    shown = last_json(run_cli(*args, "--dry-run", "--json").stdout)
    config, source = shown["config"], shown["from"]
    assert config["recipe"] == "modern@1" and config["lr"] == 0.1 and config["epochs"] == 20
    assert source["epochs"] == "flag" and source["batch_norm"] == "flag"
    assert source["lr"] == "recipe" and source["scheduler"] == "recipe"
    assert source["seed"] == "default" and source["step_size"] == "default"
    assert not out.exists()
    text = run_cli(*args, "--dry-run").stdout
    assert "recipe modern@1" in text and "nothing trained or written" in text
    assert any(line.split() == ["lr", "0.1", "recipe"] for line in text.splitlines())
    refused = run_cli(*args, "--dry-run", "--resume", check=False)
    assert refused.returncode != 0 and "--resume" in refused.stderr
    assert "Traceback" not in refused.stderr and not out.exists()
