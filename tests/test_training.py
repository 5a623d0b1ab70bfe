"""Training: schedules, seeds, divergence, exact resume, checkpoints, transfer, the CLI."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from squeezelab.results import records as records_module
from squeezelab.training import (
    CheckpointError,
    ConfigError,
    RunConfig,
    RunDirError,
    from_dict,
    load_checkpoint,
    train,
)
from squeezelab.training import loop as loop_module
from squeezelab.training.runtime import cpu_name
from squeezelab.training.schedules import build_scheduler, current_lr, steps_per_iteration
from squeezelab.training.step import sgd

from .conftest import last_json, run_cli

TINY = dict(data="synthetic:400", image_size=32, batch_size=32, epochs=3, lr=0.01, batch_norm=True)


def tiny(**changes: object) -> RunConfig:
    return from_dict({**TINY, **changes})


def metrics(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for row in rows:  # when an epoch ran and how busy the machine was: not the run's result
        row.pop("epoch_s")
        row.pop("load", None)
    return rows


# --- schedules ----------------------------------------------------------------------------


def lr_curve(
    cfg: RunConfig, steps_per_epoch: int, val_losses: list[float] | None = None
) -> list[float]:
    """The LR at the start of every epoch, stepping the scheduler as the training loop does."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=cfg.lr, momentum=cfg.momentum)
    sched = build_scheduler(cfg, opt, steps_per_epoch)
    lrs = []
    for epoch in range(cfg.epochs):
        lrs.append(current_lr(opt))
        if steps_per_iteration(sched):
            for _ in range(steps_per_epoch):
                opt.step()
                sched.step()
        else:
            sched.step(val_losses[epoch] if val_losses else 1.0)  # type: ignore[arg-type]
    return lrs


def test_step_schedule_divides_by_ten_every_ten_epochs() -> None:
    cfg = RunConfig(scheduler="step", epochs=25, lr=0.1)
    assert lr_curve(cfg, 4) == pytest.approx([0.1] * 10 + [0.01] * 10 + [0.001] * 5)
    custom = RunConfig(scheduler="step", epochs=6, lr=1.0, step_size=2, step_gamma=0.5)
    assert lr_curve(custom, 3) == pytest.approx([1, 1, 0.5, 0.5, 0.25, 0.25])


def test_plateau_halves_when_three_epochs_pass_without_improvement() -> None:
    # torch's patience semantics: three bad epochs are tolerated, the fourth halves the LR.
    cfg = RunConfig(scheduler="plateau", epochs=9, lr=0.1)
    losses = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8]
    assert lr_curve(cfg, 5, losses) == pytest.approx([0.1] * 6 + [0.05] * 3)


def test_linear_cosine_onecycle_and_warmup_shapes() -> None:
    linear = lr_curve(RunConfig(scheduler="linear", epochs=4, lr=0.4), 10)
    assert linear == pytest.approx([0.4, 0.3, 0.2, 0.1])
    cosine = lr_curve(RunConfig(scheduler="cosine", epochs=4, lr=1.0), 10)
    assert cosine == pytest.approx([1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.1464466], 1e-5)
    one = lr_curve(RunConfig(scheduler="onecycle", epochs=8, lr=1.0), 10)
    assert one[0] == pytest.approx(0.04) and max(one) > 0.9 and one[-1] < 0.1
    assert one.index(max(one)) == 2  # the peak at a quarter of the run
    warm = lr_curve(RunConfig(scheduler="none", epochs=3, lr=1.0, warmup_epochs=2), 10)
    assert warm == pytest.approx([1 / 20, 11 / 20, 1.0])  # (step + 1) / warm-up steps
    none = lr_curve(RunConfig(scheduler="none", epochs=3, lr=0.3), 10)
    assert none == pytest.approx([0.3] * 3)


# --- determinism, divergence, resume -------------------------------------------------------


def test_same_seed_gives_identical_metrics(tmp_path: Path) -> None:
    a = train(tiny(), tmp_path / "a", verbose=False).result
    b = train(tiny(), tmp_path / "b", verbose=False).result
    train(tiny(seed=1), tmp_path / "c", verbose=False)
    assert metrics(tmp_path / "a") == metrics(tmp_path / "b")
    assert a.val_acc == b.val_acc and a.test_acc == b.test_acc
    assert metrics(tmp_path / "a") != metrics(tmp_path / "c")
    # It learns: the training loss falls well below chance's ln(10) = 2.303 over 3 epochs on
    # the 320 training images (its 40 validation images are too few to show it on every CPU:
    # seeds 0-2 end at 15-32%, fp32 or bf16).
    losses = [row["train_loss"] for row in metrics(tmp_path / "a")]
    assert losses[-1] < losses[0] - 0.1 and losses[-1] < 2.2


def test_recipe_is_stored_with_the_run(tmp_path: Path) -> None:
    train(tiny(epochs=1), tmp_path / "r", verbose=False)
    recipe = json.loads((tmp_path / "r" / "config.json").read_text())
    assert recipe["config"]["lr"] == 0.01 and recipe["config"]["seed"] == 0
    assert recipe["key"] == tiny(epochs=1).key()
    assert {"squeezelab", "torch", "git_commit", "device", "precision", "num_classes"} <= set(
        recipe
    )
    # The CPU by name: a store merged from two CPUs tells an AMX Xeon from an AVX2 EPYC
    assert recipe["device_name"] == cpu_name() and recipe["device_name"] not in ("", "cpu")


def test_finished_runs_keep_no_resume_checkpoint(tmp_path: Path) -> None:
    first = train(tiny(epochs=1), tmp_path / "r", verbose=False)
    result = first.result
    assert not (tmp_path / "r" / "checkpoint.safetensors").exists()
    assert (tmp_path / "r" / "model.safetensors").is_file()
    assert result.checkpoint == str(tmp_path / "r" / "model.safetensors")
    again = train(tiny(epochs=1), tmp_path / "r", resume=True, verbose=False)  # read back
    assert again.result == result and again.history == first.history
    stored = json.loads((tmp_path / "r" / "config.json").read_text())
    assert again.provenance == first.provenance == stored
    kept = train(tiny(epochs=1), tmp_path / "k", verbose=False, keep_checkpoint=True).result
    assert (
        Path(kept.checkpoint).name == "checkpoint.safetensors" and Path(kept.checkpoint).is_file()
    )


def test_divergence_is_detected_and_recorded(tmp_path: Path) -> None:
    outcome = train(tiny(lr=1e6, batch_norm=False, epochs=3), tmp_path / "d", verbose=False)
    result = outcome.result
    assert result.diverged
    assert result.val_acc == 10.0 and result.test_acc == 10.0
    rows = metrics(tmp_path / "d")
    # Training stops at the first diverged epoch: it is the last row, and the only one.
    assert [r["diverged"] for r in rows] == [True] and result.epochs == len(rows) == 1
    assert rows[0]["train_loss"] is None and len(outcome.history) == 1
    assert json.loads((tmp_path / "d" / "result.json").read_text())["diverged"] is True


def cut_at(cfg: RunConfig, out: Path, epoch: int, monkeypatch) -> None:
    """Train ``cfg`` into ``out`` as a Ctrl-C at the start of ``epoch`` leaves it."""
    real = loop_module._run_epoch

    def interrupt(cfg_, parts, dev, precision, at, show):
        if at == epoch:
            raise KeyboardInterrupt
        return real(cfg_, parts, dev, precision, at, show)

    with monkeypatch.context() as patch:
        patch.setattr(loop_module, "_run_epoch", interrupt)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, out, verbose=False)


@pytest.mark.parametrize("extra", [{}, {"ema_decay": 0.9, "tta_flip": True}])
def test_interrupted_then_resumed_equals_uninterrupted(
    tmp_path: Path, monkeypatch, extra: dict
) -> None:
    cfg = tiny(epochs=4, scheduler="onecycle", **extra)
    train(cfg, tmp_path / "full", verbose=False)
    cut_at(cfg, tmp_path / "cut", 3, monkeypatch)
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.safetensors").epoch == 2
    with pytest.raises(RunDirError, match="--resume"):
        train(cfg, tmp_path / "cut", verbose=False)
    train(cfg, tmp_path / "cut", resume=True, verbose=False)
    assert metrics(tmp_path / "cut") == metrics(tmp_path / "full")
    from safetensors.torch import load_file

    a = load_file(tmp_path / "full" / "model.safetensors")
    b = load_file(tmp_path / "cut" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_resumed_at_another_precision_records_both(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """`auto` resolves per machine: a run cut on a bf16 machine and resumed on an fp32 one (or
    the reverse) is no exact resume; its recipe records both precisions, and its log says so."""
    cfg = tiny(epochs=2)
    cut_at(cfg, tmp_path / "r", 2, monkeypatch)
    config = tmp_path / "r" / "config.json"
    recipe = json.loads(config.read_text())
    here = recipe["precision"]
    other = "fp32" if here == "bf16" else "bf16"
    config.write_text(json.dumps({**recipe, "precision": other}))  # cut on the other kind
    outcome = train(cfg, tmp_path / "r", resume=True)
    assert outcome.provenance["precision"] == f"{other} then {here}"
    assert f"epochs 1-1 of this run were computed at {other}" in capsys.readouterr().err
    again = train(cfg, tmp_path / "r", resume=True)  # read back: nothing new to say
    assert again.provenance["precision"] == f"{other} then {here}"


@pytest.mark.parametrize("scheduler", ["plateau", "step"])
def test_resume_restores_epoch_schedulers(tmp_path: Path, monkeypatch, scheduler: str) -> None:
    cfg = tiny(epochs=3, scheduler=scheduler, step_size=1)
    train(cfg, tmp_path / "full", verbose=False)
    real = loop_module._run_epoch
    calls = {"n": 0}

    def interrupt_once(*args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(loop_module, "_run_epoch", interrupt_once)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", verbose=False)
    monkeypatch.setattr(loop_module, "_run_epoch", real)
    train(cfg, tmp_path / "cut", resume=True, verbose=False)
    assert metrics(tmp_path / "cut") == metrics(tmp_path / "full")


def test_resume_refuses_a_different_config(tmp_path: Path) -> None:
    train(tiny(epochs=1), tmp_path / "r", verbose=False)
    with pytest.raises(RunDirError, match="different config.*lr"):
        train(tiny(epochs=1, lr=0.05), tmp_path / "r", resume=True, verbose=False)


def test_truncated_checkpoint_gives_clear_error(tmp_path: Path) -> None:
    train(tiny(epochs=1), tmp_path / "r", verbose=False, keep_checkpoint=True)
    ckpt = tmp_path / "r" / "checkpoint.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    (tmp_path / "r" / "result.json").unlink()
    with pytest.raises(CheckpointError, match=r"checkpoint.*checkpoint\.safetensors.*truncated"):
        train(tiny(epochs=1), tmp_path / "r", resume=True, verbose=False)


def test_bad_config_fields_are_named() -> None:
    with pytest.raises(ConfigError, match="unknown field.*lrate"):
        from_dict({"lrate": 0.1})
    with pytest.raises(ConfigError, match="scheduler must be one of none, step"):
        from_dict({"scheduler": "exp"})
    with pytest.raises(ConfigError, match="momentum must lie in"):
        from_dict({"momentum": 1.5})


# --- transfer learning ---------------------------------------------------------------------


def test_transfer_from_checkpoint_with_other_class_count(tmp_path: Path, jpeg_archive) -> None:
    train(tiny(epochs=1), tmp_path / "src", verbose=False)  # 10 classes
    from squeezelab.training.checkpoint import load_weights

    src = load_weights(tmp_path / "src")
    cfg = tiny(epochs=1, data=str(jpeg_archive), init=str(tmp_path / "src"), lr=1e-9)
    train(cfg, tmp_path / "dst", verbose=False)  # 3 classes
    dst = load_weights(tmp_path / "dst")
    assert dst["classifier.1.weight"].shape[0] == 3
    # With a negligible learning rate the trunk keeps the source weights.
    torch.testing.assert_close(
        dst["features.0.weight"], src["features.0.weight"], atol=1e-6, rtol=0
    )


def test_transfer_from_torchvision_pth(tmp_path: Path) -> None:
    import torchvision

    torch.manual_seed(3)
    path = tmp_path / "sq.pth"
    torch.save(torchvision.models.squeezenet1_1().state_dict(), path)
    cfg = tiny(epochs=1, model="squeezenet1_1", init=str(path), lr=1e-9)
    train(cfg, tmp_path / "t", verbose=False)
    from squeezelab.training.checkpoint import load_weights

    got = load_weights(tmp_path / "t")["features.0.weight"]
    torch.testing.assert_close(got, torch.load(path)["features.0.weight"], atol=1e-6, rtol=0)


def test_transfer_from_wrong_model_is_refused(tmp_path: Path) -> None:
    import torchvision

    path = tmp_path / "alex.pth"
    torch.save(torchvision.models.alexnet().state_dict(), path)
    with pytest.raises(CheckpointError, match="no weights of .* fit"):
        train(tiny(epochs=1, init=str(path)), tmp_path / "t", verbose=False)


# --- the CLI as a user runs it -------------------------------------------------------------

CLI_TINY = ["--data", "synthetic:200", "--image-size", "32", "--batch-size", "32",
            "--batch-norm", "--lr", "0.05"]  # fmt: skip


def test_cli_train_evaluate_json(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_cli("train", *CLI_TINY, "--epochs", "2", "--out", str(out), "--json")
    result = last_json(proc.stdout)
    assert set(result) >= {"val_acc", "val_loss", "train_loss", "epochs", "diverged", "checkpoint"}
    assert result["epochs"] == 2 and result["diverged"] is False
    assert "epoch 2/2" in proc.stderr
    ev = last_json(run_cli("evaluate", str(out), "--split", "val", "--json").stdout)
    assert ev["n"] == 20 and ev["accuracy"] == pytest.approx(result["val_acc"])
    every = last_json(run_cli("evaluate", str(out), "--split", "all", "--json").stdout)
    assert every["n"] == 200 + 50


def test_evaluate_refuses_data_whose_classes_are_not_the_runs(tmp_path: Path) -> None:
    """Three classes and three classes are not the same three: scoring a cat/dog/frog model
    on ant/bee/cow data would count every image against a label it never meant."""
    from .conftest import write_jpeg_archive

    ours = write_jpeg_archive(tmp_path / "ours.tar.gz")
    theirs = write_jpeg_archive(tmp_path / "theirs.tar.gz", classes=("ant", "bee", "cow"))
    out = tmp_path / "run"
    run_cli("train", "--data", str(ours), "--image-size", "32", "--epochs", "1", "--out", str(out))
    assert json.loads((out / "config.json").read_text())["classes"] == ["cat", "dog", "frog"]
    same = last_json(run_cli("evaluate", str(out), "--data", str(ours), "--json").stdout)
    assert same["n"] > 0
    other = run_cli("evaluate", str(out), "--data", str(theirs), check=False)
    assert other.returncode == 2
    assert "classes are not the ones the run learned" in other.stderr
    assert "0: cat / ant" in other.stderr


def test_cli_diverged_run_exits_zero(tmp_path: Path) -> None:
    proc = run_cli("train", "--data", "synthetic:200", "--image-size", "32", "--lr", "1e6",
                   "--epochs", "2", "--out", str(tmp_path / "d"), "--json")  # fmt: skip
    assert last_json(proc.stdout)["diverged"] is True


def test_cli_bad_input_messages(tmp_path: Path) -> None:
    bad = run_cli("train", "--data", "nowhere.tar.gz", "--out", str(tmp_path / "x"), check=False)
    assert bad.returncode == 2 and "nowhere.tar.gz" in bad.stderr
    bad = run_cli("train", "--scheduler", "exp", "--out", str(tmp_path / "x"), check=False)
    assert bad.returncode == 2 and "--scheduler: invalid choice: 'exp'" in bad.stderr
    assert "'step', 'plateau', 'linear', 'cosine', 'onecycle'" in bad.stderr  # choices listed
    bad = run_cli("evaluate", str(tmp_path / "missing"), check=False)
    assert bad.returncode == 2 and "not a squeezelab run directory" in bad.stderr


@pytest.mark.slow
def test_cli_killed_process_resumes_to_same_metrics(tmp_path: Path) -> None:
    args = [*CLI_TINY, "--data", "synthetic:600", "--epochs", "4"]
    run_cli("train", *args, "--out", str(tmp_path / "full"))
    proc = subprocess.Popen(
        ["squeezelab", "train", *args, "--out", str(tmp_path / "cut")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ckpt = tmp_path / "cut" / "checkpoint.safetensors"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "cut" / "result.json").exists()
    run_cli("train", *args, "--out", str(tmp_path / "cut"), "--resume")
    assert metrics(tmp_path / "cut") == metrics(tmp_path / "full")


def test_init_imagenet_offline_says_what_to_do(tmp_path: Path, monkeypatch) -> None:
    import torchvision.models as tvm

    def offline(self, *args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(
        tvm.SqueezeNet1_0_Weights.IMAGENET1K_V1.__class__, "get_state_dict", offline
    )
    with pytest.raises(CheckpointError, match=r"could not download.*--init PATH\.pth"):
        train(tiny(epochs=1, init="imagenet"), tmp_path / "t", verbose=False)


def test_tensorboard_events_are_written_and_readable(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(tiny(epochs=2), tmp_path / "r", verbose=False, tensorboard=True)
    events = EventAccumulator(str(tmp_path / "r" / "tb"))
    events.Reload()
    assert {"train_loss", "val_acc", "lr", "epoch_s"} <= set(events.Tags()["scalars"])
    got = [(e.step, e.value) for e in events.Scalars("val_acc")]
    want = [(row["epoch"], row["val_acc"]) for row in metrics(tmp_path / "r")]
    assert [s for s, _ in got] == [1, 2]
    assert [v for _, v in got] == pytest.approx([v for _, v in want])
    train(tiny(epochs=1), tmp_path / "off", verbose=False, tensorboard=False)
    assert not (tmp_path / "off" / "tb").exists()


def test_checkpoint_bit_flip_is_detected(tmp_path: Path) -> None:
    train(tiny(epochs=1), tmp_path / "r", verbose=False, keep_checkpoint=True)
    ckpt = tmp_path / "r" / "checkpoint.safetensors"
    data = bytearray(ckpt.read_bytes())
    data[-100] ^= 0x10  # a weight byte, well past the header
    ckpt.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="do not match their checksum"):
        load_checkpoint(ckpt)


def test_checkpoint_from_beyond_the_run_is_refused(tmp_path: Path, monkeypatch) -> None:
    train(tiny(epochs=3), tmp_path / "r", verbose=False, keep_checkpoint=True)
    (tmp_path / "r" / "result.json").unlink()
    with pytest.raises(CheckpointError, match="3 epochs done .* of a 2-epoch run"):
        # the same directory, config changed to fewer epochs: check_same_run is bypassed
        monkeypatch.setattr("squeezelab.training.rundir.check_same_run", lambda out, cfg: None)
        train(tiny(epochs=2), tmp_path / "r", resume=True, verbose=False)


def test_kill_after_the_last_checkpoint_loses_no_epoch(tmp_path: Path) -> None:
    cfg = tiny(epochs=2)
    train(cfg, tmp_path / "r", verbose=False, keep_checkpoint=True)
    full = metrics(tmp_path / "r")
    # As if killed after the final checkpoint, before metrics.jsonl and result.json.
    (tmp_path / "r" / "result.json").unlink()
    (tmp_path / "r" / "model.safetensors").unlink()
    (tmp_path / "r" / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in full[:1]) + "\n")
    result = train(cfg, tmp_path / "r", resume=True, verbose=False).result
    assert result.epochs == 2 and metrics(tmp_path / "r") == full


def test_diverged_run_has_no_weights_to_evaluate(tmp_path: Path) -> None:
    from squeezelab.training import load_weights

    train(tiny(lr=1e6, batch_norm=False, epochs=2), tmp_path / "d", verbose=False)
    with pytest.raises(CheckpointError, match="diverged"):
        load_weights(tmp_path / "d")


def test_run_keys_of_stored_runs_never_change() -> None:
    """Keys written by earlier releases (the store's primary key) stay the same."""
    assert RunConfig().key() == "a380129cbe5e9652"
    assert from_dict({"model": "alexnet", "lr": 0.05}).key() == "5d329cd25e5ae8ba"
    cfg = {"batch_norm": True, "bypass": "simple", "data": "cifar10", "init": "imagenet"}
    assert from_dict(cfg).key() == "4ba13d90429d96e3"
    # the protocol readings join the key only when set away from their defaults
    defaults = {"augmentation": "pad-crop", "eval_transform": "none", "normalization": "imagenet"}
    assert from_dict(defaults).key() == "a380129cbe5e9652"
    assert from_dict({"augmentation": "random-resized-crop"}).key() != "a380129cbe5e9652"


def test_crop_scale_belongs_to_random_resized_crop() -> None:
    assert from_dict({"augmentation": "random-resized-crop", "crop_scale": 0.25}).crop_scale == 0.25
    with pytest.raises(ConfigError, match="crop_scale applies to augmentation='random-resized"):
        from_dict({"crop_scale": 0.25})
    with pytest.raises(ConfigError, match="eval_transform"):
        from_dict({"eval_transform": "test"})


def test_evaluation_under_training_transforms_is_recorded_and_repeats(tmp_path: Path) -> None:
    from squeezelab.training.evaluation import evaluate_run

    cfg = tiny(epochs=1, augmentation="random-resized-crop", eval_transform="train")
    result = train(cfg, tmp_path / "r", verbose=False).result
    again = evaluate_run(tmp_path / "r", split="test")
    assert again["accuracy"] == pytest.approx(result.test_acc)


def test_sgd_is_fused_and_matches_the_per_operation_update() -> None:
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    start = [torch.randn(8, 3, 5, 5).contiguous(memory_format=torch.channels_last), torch.randn(8)]
    grads = [[torch.randn_like(p) for p in start] for _ in range(5)]
    kwargs = {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "nesterov": True}
    weights = {}
    for name in ("fused", "reference"):
        params = [p.clone().requires_grad_() for p in start]
        if name == "fused":
            opt = sgd(params, cpu, **kwargs)
            assert opt.param_groups[0]["fused"]
        else:
            opt = torch.optim.SGD(params, foreach=False, **kwargs)
        for step in grads:
            for p, g in zip(params, step, strict=True):
                p.grad = g.clone()
            opt.step()
        weights[name] = params
    for a, b in zip(weights["fused"], weights["reference"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_a_run_at_chance_for_three_epochs_gets_one_note() -> None:
    at = [{"epoch": i + 1, "val_acc": 10.4} for i in range(3)]
    plain = RunConfig(model="squeezenet1_0", lr=0.05)
    note = loop_module.stall_note(at, 10.0, plain)
    assert note.startswith(
        "note: validation accuracy is still at chance (10%) after 3 epochs at lr 0.05"
    )
    assert "plain SqueezeNet" in note and "--batch-norm" in note
    assert loop_module.stall_note(at[:2], 10.0, plain) == ""  # too early to say
    assert loop_module.stall_note([*at, {"epoch": 4, "val_acc": 10.1}], 10.0, plain) == ""
    learned = [*at[:2], {"epoch": 3, "val_acc": 14.0}]
    assert loop_module.stall_note(learned, 10.0, plain) == ""
    died = [*at[:2], {"epoch": 3, "val_acc": 10.0, "diverged": True}]
    assert loop_module.stall_note(died, 10.0, plain) == ""  # a diverged run is said so already


@pytest.mark.parametrize(
    "cfg", [RunConfig(model="alexnet", lr=0.001), RunConfig(batch_norm=True, lr=0.001)]
)
def test_the_stall_note_blames_plain_squeezenet_only_for_its_runs(cfg: RunConfig) -> None:
    # AlexNet at 0.001 sat at chance in the quick preset: the note named plain SqueezeNet
    note = loop_module.stall_note([{"epoch": i + 1, "val_acc": 10.0} for i in range(3)], 10.0, cfg)
    assert "may have stalled" in note and "lr 0.001" in note
    assert "plain SqueezeNet" not in note and "--batch-norm" not in note
    assert "too high or too low" in note


def test_a_run_says_first_what_it_trains_and_where(tmp_path: Path, capsys) -> None:
    train(tiny(epochs=2), tmp_path / "r")
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith("training squeezenet1_0+bn on synthetic:400 (")
    assert "train / val / test images), 2 epochs, on " in first and cpu_name() in first
    # auto precision: fp32 only on a CPU without bf16 units, and then the line says why
    assert ("(auto: this CPU has no bf16 matrix units)" in first) == (", fp32," in first)


def test_the_stall_note_is_printed_with_the_epoch_lines(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setattr(records_module, "at_chance", lambda *a: True)  # every accuracy: chance
    train(tiny(), tmp_path / "r")
    err = capsys.readouterr().err
    assert err.count("this run may have stalled") == 1
    assert err.index("epoch 3/3:") < err.index("this run may have stalled")


def test_a_study_may_stop_runs_that_stay_at_chance(tmp_path: Path, monkeypatch) -> None:
    stuck = {"on": True}
    monkeypatch.setattr(records_module, "at_chance", lambda *a: stuck["on"])
    out = train(tiny(epochs=5), tmp_path / "s", verbose=False, stop_stalled_after=2)
    assert out.result.epochs == 2 and len(out.history) == 2
    assert out.provenance["stopped"].startswith("stalled: validation accuracy at chance through")
    stored = json.loads((tmp_path / "s" / "config.json").read_text())
    assert stored["stopped"] == out.provenance["stopped"]
    # a run that leaves chance, and any run without the rule, trains every epoch
    stuck["on"] = False
    learned = train(tiny(epochs=3), tmp_path / "l", verbose=False, stop_stalled_after=2)
    assert learned.result.epochs == 3 and "stopped" not in learned.provenance
    stuck["on"] = True
    plain = train(tiny(epochs=3), tmp_path / "p", verbose=False)
    assert plain.result.epochs == 3


def test_a_run_that_cannot_fit_in_memory_is_refused_before_it_allocates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from squeezelab.errors import ConfigError
    from squeezelab.models import get_model
    from squeezelab.models.complexity import activation_bytes

    per_image = activation_bytes(get_model("squeezenet1_0", num_classes=10), 64)
    assert 1e6 < per_image < 1e7  # about 2.4 MB of float32 outputs for one 64x64 image
    monkeypatch.setattr(loop_module, "available_memory", lambda dev: 50_000_000)
    with pytest.raises(ConfigError, match=r"batch 64, needs about 0\.\d GB .* has 0\.1 GB free"):
        train(tiny(image_size=64, batch_size=64), tmp_path / "big", verbose=False)
    assert not (tmp_path / "big").exists()  # refused at start: nothing left behind


def test_a_run_refused_at_start_leaves_no_folder(tmp_path: Path) -> None:
    bad = run_cli("train", "--data", str(tmp_path / "none.tar.gz"), "--out", str(tmp_path / "r"),
                  check=False)  # fmt: skip
    assert bad.returncode == 2 and not (tmp_path / "r").exists()
    (tmp_path / "kept").mkdir()  # a folder the user made stays, even when the run is refused
    run_cli("train", "--data", str(tmp_path / "none.tar.gz"), "--out", str(tmp_path / "kept"),
            check=False)  # fmt: skip
    assert (tmp_path / "kept").is_dir()
