"""Train and evaluate one run: seeded, mixed precision where it pays, resumable exactly.

A run directory holds ``config.json`` (the run's provenance), ``metrics.jsonl`` (one line
per epoch), ``checkpoint.safetensors`` (everything needed to resume), then ``model.safetensors`` and
``result.json`` when the run ends.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from ..data import Batches, ImageSet, Preprocess, Source, Splits, load_source, split_source
from ..data.pipeline import EVAL_SEED, Augment
from ..errors import ConfigError, SqueezelabError
from ..models import get_model, model_info, variant_of
from ..models.complexity import activation_bytes, count_params
from ..results.records import left_chance, machine_of
from .checkpoint import CheckpointError, TrainingState, save_atomic, save_checkpoint
from .config import RunConfig
from .rundir import (
    CHECKPOINT,
    CONFIG,
    METRICS_FILE,
    MODEL,
    RESULT,
    check_same_run,
    lock_dir,
    prepare_dir,
    provenance,
    write_json,
    write_lines,
)
from .runtime import (
    autocast,
    available_memory,
    configure_backend,
    pick_device,
    resolve_precision,
    rng_state,
    seed_everything,
    set_rng_state,
)
from .schedules import build_scheduler, current_lr, steps_per_iteration
from .step import sgd, train_step
from .transfer import init_from

DIVERGENCE_CHECK_EVERY = 10  # optimizer steps between finite-loss checks (each one syncs)


@dataclass
class RunResult:
    """The outcome of a run; accuracies in percent."""

    val_acc: float
    val_loss: float | None
    train_loss: float | None
    test_acc: float
    test_loss: float | None
    epochs: int
    diverged: bool
    checkpoint: str
    train_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainOutcome:
    """Everything a caller needs from a run: its result, per-epoch history and provenance."""

    result: RunResult
    history: list[dict[str, Any]]
    provenance: dict[str, Any]


@dataclass
class _Parts:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler | None
    generator: torch.Generator
    train: Batches
    val: Batches
    test: Batches
    num_classes: int
    ema: AveragedModel | None = None  # the weight average that evaluation uses, if any
    classes: tuple[str, ...] = ()  # the class names, in label order

    @property
    def evaluated(self) -> nn.Module:
        """The weights evaluated and saved: the average when the run keeps one."""
        return self.ema.module if self.ema is not None else self.model


def train(
    cfg: RunConfig,
    out_dir: str | os.PathLike[str],
    *,
    data_dir: str | None = None,
    resume: bool = False,
    device: str | None = None,
    progress: bool | None = None,
    verbose: bool = True,
    keep_checkpoint: bool = False,
    tensorboard: bool | None = None,
    stop_stalled_after: int | None = None,
    on_epoch: Callable[[Path], None] | None = None,
) -> TrainOutcome:
    """Train ``cfg`` into ``out_dir``; with ``resume``, continue from its last checkpoint.

    The resume checkpoint (weights, optimizer state, RNG) is removed once the run has
    finished and its ``model.safetensors`` and ``result.json`` are written, unless
    ``keep_checkpoint`` (an AlexNet checkpoint is ~456 MB). Each epoch's metrics also go to
    TensorBoard event files in ``OUT/tb`` when the package is installed (``tensorboard``:
    None = when installed, True = required, False = never). ``stop_stalled_after`` (k): stop
    a run whose validation accuracy has not left chance in any of its first k epochs (the
    binomial rule of ``results.records.left_chance``); it ends there, its provenance says so.
    ``on_epoch(out_dir)`` is called after each epoch's checkpoint and metrics are written (a
    run in node-local scratch copies them to storage there).
    """
    cfg.validate()
    out = Path(out_dir)
    if (out / RESULT).is_file() and resume:
        check_same_run(out, cfg)
        return read_outcome(out)
    made = not out.exists()
    top = out  # the highest folder this call creates (runs/ of runs/a, when neither exists)
    while not top.parent.exists():
        top = top.parent
    out.mkdir(parents=True, exist_ok=True)
    try:
        with lock_dir(out):
            return _train_locked(
                cfg, out, data_dir, resume, device, progress, verbose, keep_checkpoint,
                tensorboard, stop_stalled_after, on_epoch,
            )  # fmt: skip
    except SqueezelabError:
        # A run refused at start (its data, its size, its memory) leaves nothing behind: the
        # folder this call made goes again when it holds only the lock.
        if made and {p.name for p in out.iterdir()} <= {".lock"}:
            shutil.rmtree(out, ignore_errors=True)
            for parent in out.parents:  # and the empty parents it made for it
                if not parent.is_relative_to(top) or any(parent.iterdir()):
                    break
                parent.rmdir()
        raise


def _train_locked(
    cfg: RunConfig,
    out: Path,
    data_dir: str | None,
    resume: bool,
    device: str | None,
    progress: bool | None,
    verbose: bool,
    keep_checkpoint: bool,
    tensorboard: bool | None,
    stop_stalled_after: int | None,
    on_epoch: Callable[[Path], None] | None,
) -> TrainOutcome:
    if (out / RESULT).is_file() and resume:  # finished while we waited to start
        return read_outcome(out)
    state = prepare_dir(out, cfg, resume)
    dev = pick_device(device)
    precision = resolve_precision(cfg.precision, dev)
    configure_backend(precision, dev)
    show = sys.stderr.isatty() if progress is None else progress
    seed_everything(cfg.seed)
    parts = _build(cfg, dev, precision, data_dir, fresh=state is None)
    history: list[dict[str, Any]] = []
    start = 0
    if state is not None:
        _check_state(state, cfg, out)
        try:
            parts.model.load_state_dict(state.model)
            parts.optimizer.load_state_dict(state.optimizer)
            _match_parameter_layouts(parts.optimizer)
        except (RuntimeError, KeyError, ValueError) as err:
            detail = " ".join(str(err).split())
            raise CheckpointError(
                f"{out / CHECKPOINT} does not fit this run's model and optimizer: {detail}"
            ) from None
        parts.scheduler.load_state_dict(state.scheduler)
        if parts.ema is not None and state.ema is not None:
            parts.ema.load_state_dict(state.ema)
        if parts.scaler is not None and state.scaler:
            parts.scaler.load_state_dict(state.scaler)
        set_rng_state(state.rng, parts.generator)
        history, start = state.history, state.epoch
        # The checkpoint's history is the truth: a kill between checkpoint and metrics file
        # (even after the last epoch) loses nothing.
        write_lines(out / METRICS_FILE, history)
        _log(f"resuming {out} after epoch {start}/{cfg.epochs}", verbose)
    run_provenance = provenance(
        cfg,
        dev,
        precision,
        parts.num_classes,
        len(parts.train.labels),
        (len(parts.val.labels), len(parts.test.labels)),
        parts.classes,
    )
    if state is not None:
        run_provenance["precision"] = _resumed_precision(out, precision, start, verbose)
        run_provenance["resumed_after"] = [*_earlier_resumes(out), start]
    write_json(out / CONFIG, run_provenance)
    if start == 0:
        _log(_start_line(cfg, parts, run_provenance), verbose)
    diverged = any(row.get("diverged") for row in history)
    board = open_board(out, start, tensorboard) if start < cfg.epochs and not diverged else None
    try:
        for epoch in range(start + 1, cfg.epochs + 1):
            if diverged or stalled_for(history, stop_stalled_after, parts):
                break
            row = _run_epoch(cfg, parts, dev, precision, epoch, show)
            history.append(row)
            diverged = _save_epoch(out, parts, history, row, board)
            if on_epoch is not None:
                on_epoch(out)
            _log(_format_row(row, cfg.epochs), verbose)
            chance = 100.0 / parts.num_classes
            stalled = stall_note(history, chance, cfg, len(parts.val.labels))
            if stalled:
                _log(stalled, verbose)
    finally:
        if board is not None:
            board.close()
    if len(history) < cfg.epochs and stalled_for(history, stop_stalled_after, parts):
        run_provenance["stopped"] = (
            f"stalled: validation accuracy at chance through epoch {len(history)} of "
            f"{cfg.epochs} (stop_stalled_after = {stop_stalled_after})"
        )
        write_json(out / CONFIG, run_provenance)
        _log(f"stopped: {run_provenance['stopped']}", verbose)
    result = _finish(out, cfg, parts, dev, precision, history, keep_checkpoint)
    return TrainOutcome(result, history, run_provenance)


def stalled_for(history: list[dict[str, Any]], epochs: int | None, parts: _Parts) -> bool:
    """Whether a run has been at chance in every one of its epochs, ``epochs`` at least (and
    has not diverged: a diverged run ends by itself)."""
    if not epochs or len(history) < epochs or any(row.get("diverged") for row in history):
        return False
    chance, images = 100.0 / parts.num_classes, len(parts.val.labels)
    return not any(left_chance(row.get("val_acc") or 0.0, chance, images) for row in history)


def read_outcome(out: Path) -> TrainOutcome:
    """The outcome of a finished run, read back from its directory."""
    history = [json.loads(line) for line in (out / METRICS_FILE).read_text().splitlines()]
    return TrainOutcome(
        RunResult(**json.loads((out / RESULT).read_text())),
        history,
        json.loads((out / CONFIG).read_text()),
    )


def _check_state(state: TrainingState, cfg: RunConfig, out: Path) -> None:
    """Refuse a checkpoint whose epoch count cannot belong to this run."""
    if not 0 <= state.epoch <= cfg.epochs or len(state.history) != state.epoch:
        raise CheckpointError(
            f"{out / CHECKPOINT} claims {state.epoch} epochs done ({len(state.history)} in its "
            f"history) of a {cfg.epochs}-epoch run: not this run's checkpoint"
        )


def _save_epoch(out: Path, parts: _Parts, history: list[dict], row: dict, board: Any) -> bool:
    """Write the epoch's checkpoint, metrics and TensorBoard scalars; return 'diverged'."""
    save_checkpoint(
        out / CHECKPOINT,
        TrainingState(
            epoch=row["epoch"],
            model=parts.model.state_dict(),
            optimizer=parts.optimizer.state_dict(),
            scheduler=parts.scheduler.state_dict(),
            rng=rng_state(parts.generator),
            history=history,
            scaler=parts.scaler.state_dict() if parts.scaler is not None else None,
            ema=parts.ema.state_dict() if parts.ema is not None else None,
        ),
    )
    write_lines(out / METRICS_FILE, history)
    if board is not None:
        for name, value in row.items():
            if name not in ("epoch", "diverged") and isinstance(value, (int, float)):
                board.add_scalar(name, value, row["epoch"])
        board.flush()
    return bool(row["diverged"])


def open_board(out: Path, start: int, wanted: bool | None) -> Any:
    """A TensorBoard writer for ``OUT/tb`` (events after ``start`` replaced on resume)."""
    if wanted is False:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        if wanted:
            raise ModuleNotFoundError(
                "TensorBoard logging needs the tensorboard package", name="tensorboard"
            ) from None
        return None
    return SummaryWriter(str(out / "tb"), purge_step=start + 1)


@functools.lru_cache(maxsize=2)
def cached_source(spec: str, data_dir: str | None) -> Source:
    """Load a source once per process (a study trains many runs on it)."""
    return load_source(spec, data_dir, progress=sys.stderr.isatty())


def preprocess_of(cfg: RunConfig, dev: torch.device | str = "cpu") -> Preprocess:
    """The run's conversion to float: its image size and its normalization."""
    return Preprocess(cfg.image_size, dev, cfg.normalization)


def augment_of(cfg: RunConfig) -> Augment:
    """The run's training transform (its reading of "randomly cropped, resized, flipped")."""
    return Augment(cfg.augmentation, cfg.crop_scale)


def eval_batches(
    part: ImageSet, cfg: RunConfig, preprocess: Preprocess, batch_size: int = 256
) -> Batches:
    """A split batched as the run evaluates it: as it is, or (``eval_transform = "train"``)
    under the training transforms drawn from a fixed seed, so an evaluation repeats."""
    if cfg.eval_transform == "train":
        return Batches.of(
            part, batch_size, preprocess, augment=augment_of(cfg), shuffle=False, reseed=EVAL_SEED
        )
    return Batches.of(part, batch_size, preprocess)


def load_splits(cfg: RunConfig, data_dir: str | None = None) -> Splits:
    """Load and split ``cfg.data`` as the run does."""
    return split_source(
        cached_source(cfg.data, data_dir),
        cfg.val_fraction,
        cfg.test_fraction,
        cfg.split_seed,
        cfg.train_subset,
    )


def _check_memory(model: nn.Module, cfg: RunConfig, dev: torch.device) -> None:
    """Refuse, before anything large is allocated, a run whose training step cannot fit: the
    activations of one batch (measured on the meta device) and the weights with their
    gradients and momentum, against the device's free memory."""
    per_image = activation_bytes(model, cfg.image_size)  # also: can the model take it at all
    params = count_params(model)
    need = per_image * cfg.batch_size + params * 4 * 4
    free = available_memory(dev)
    if free is not None and need > free:
        raise ConfigError(
            f"{cfg.model} at {cfg.image_size}x{cfg.image_size}, batch {cfg.batch_size}, needs "
            f"about {need / 1e9:.1f} GB for one training step ({per_image / 1e6:.1f} MB of "
            f"activations an image); {dev} has {free / 1e9:.1f} GB free: lower --image-size or "
            "--batch-size"
        )


def _build(
    cfg: RunConfig, dev: torch.device, precision: str, data_dir: str | None, fresh: bool
) -> _Parts:
    splits = load_splits(cfg, data_dir)
    model = get_model(cfg.model, num_classes=splits.num_classes, **cfg.model_options())
    _check_memory(model, cfg, dev)
    if cfg.init and fresh:
        init_from(model, cfg.init, cfg.model)
    model = model.to(dev, memory_format=torch.channels_last)  # type: ignore[call-overload]
    preprocess = preprocess_of(cfg, dev)
    generator = torch.Generator().manual_seed(cfg.seed)
    train = Batches.of(
        splits.train,
        cfg.batch_size,
        preprocess,
        generator,
        augment=augment_of(cfg),
        drop_last=len(splits.train) % cfg.batch_size == 1,  # a 1-image batch breaks batch norm
    )
    if len(train) == 0:
        raise ConfigError(
            f"the training split holds {len(splits.train)} image(s): too few for one training "
            f"step (a last batch of one image is dropped: batch norm cannot train on it); use "
            "--train-subset 2 or more"
        )
    eval_bs = max(256, cfg.batch_size)
    val, test = (eval_batches(s, cfg, preprocess, eval_bs) for s in (splits.val, splits.test))
    optimizer = sgd(
        model.parameters(),
        dev,
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        nesterov=cfg.nesterov,
    )
    scheduler = build_scheduler(cfg, optimizer, len(train))
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" and dev.type == "cuda" else None
    ema = None
    if cfg.ema_decay > 0:
        ema = AveragedModel(
            model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True
        )
    return _Parts(
        model,
        optimizer,
        scheduler,
        scaler,
        generator,
        train,
        val,
        test,
        splits.num_classes,
        ema,
        tuple(splits.classes),
    )


def _match_parameter_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Give each restored per-parameter state tensor (momentum) its parameter's memory layout.

    A checkpoint stores tensors contiguous, while a channels_last model's weights are not; a
    fused update reads a weight, its gradient and its momentum as flat memory, so a mismatched
    layout would pair the wrong elements and resume wrongly, silently.
    """
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for key, value in state.items():
                per_weight = torch.is_tensor(value) and value.shape == param.shape
                if per_weight and value.stride() != param.stride():
                    state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def _run_epoch(
    cfg: RunConfig, parts: _Parts, dev: torch.device, precision: str, epoch: int, show: bool
) -> dict[str, Any]:
    t0 = time.perf_counter()
    lr = current_lr(parts.optimizer)
    train_loss, train_acc, diverged = train_one_epoch(
        parts, dev, precision, cfg.label_smoothing, desc=f"epoch {epoch}/{cfg.epochs}", show=show
    )
    row: dict[str, Any] = {"epoch": epoch, "lr": lr, "diverged": diverged}
    if diverged:
        chance = 100.0 / parts.num_classes
        row.update(train_loss=None, train_acc=train_acc, val_loss=None, val_acc=chance)
    else:
        val_loss, val_acc, _ = evaluate(parts.evaluated, parts.val, dev, precision, cfg.tta_flip)
        row.update(train_loss=train_loss, train_acc=train_acc, val_loss=val_loss, val_acc=val_acc)
        if cfg.test_each_epoch:
            row["test_loss"], row["test_acc"], _ = evaluate(
                parts.evaluated, parts.test, dev, precision, cfg.tta_flip
            )
        if not steps_per_iteration(parts.scheduler):
            parts.scheduler.step(val_loss)
    row["epoch_s"] = time.perf_counter() - t0
    if hasattr(os, "getloadavg"):  # what else ran: an epoch time on a busy machine is not its speed
        row["load"] = round(os.getloadavg()[0], 2)
    return row


def train_one_epoch(
    parts: _Parts,
    dev: torch.device,
    precision: str,
    label_smoothing: float = 0.0,
    desc: str = "",
    show: bool = False,
) -> tuple[float, float, bool]:
    """Run one epoch of SGD; return (mean loss, accuracy %, diverged)."""
    model, opt, sched = parts.model, parts.optimizer, parts.scheduler
    per_step = steps_per_iteration(sched)
    model.train()
    loss_sum = torch.zeros((), device=dev)
    correct = torch.zeros((), device=dev, dtype=torch.long)
    seen = 0
    bar = tqdm(parts.train, desc=desc, disable=not show, leave=False, unit="batch")
    for step, (x, y) in enumerate(bar, 1):
        loss, logits = train_step(
            model, opt, x, y, precision, dev, label_smoothing=label_smoothing, scaler=parts.scaler
        )
        if per_step:
            sched.step()
        if parts.ema is not None:
            parts.ema.update_parameters(model)
        loss_sum += loss * len(y)
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
        if step % DIVERGENCE_CHECK_EVERY == 0 or step == len(parts.train):
            total = loss_sum.item()
            if not math.isfinite(total):
                bar.close()
                return math.nan, 100.0 * correct.item() / seen, True
            if show:
                bar.set_postfix(loss=f"{total / seen:.3f}")
    return loss_sum.item() / max(seen, 1), 100.0 * correct.item() / max(seen, 1), False


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Batches,
    dev: torch.device,
    precision: str = "fp32",
    flip: bool = False,
) -> tuple[float, float, int]:
    """Return (mean cross-entropy, accuracy %, n) of ``model`` over ``batches``; with
    ``flip``, the logits are the mean of each image's and its mirror image's."""
    was_training = model.training
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    for x, y in batches:
        with autocast(precision, dev):
            logits = model(x)
            if flip:
                logits = (logits.float() + model(x.flip(3)).float()) / 2
        loss_sum += nn.functional.cross_entropy(logits.float(), y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        n += len(y)
    model.train(was_training)
    return loss_sum / max(n, 1), 100.0 * correct / max(n, 1), n


def _finish(
    out: Path,
    cfg: RunConfig,
    parts: _Parts,
    dev: torch.device,
    precision: str,
    history: list[dict[str, Any]],
    keep_checkpoint: bool = False,
) -> RunResult:
    last = history[-1]
    diverged = bool(last["diverged"])
    if diverged:
        test_loss, test_acc = None, 100.0 / parts.num_classes
    else:
        test_loss, test_acc, _ = evaluate(parts.evaluated, parts.test, dev, precision, cfg.tta_flip)
        state = parts.evaluated.state_dict()
        weights = {k: v.detach().cpu().contiguous() for k, v in state.items()}
        save_atomic(weights, out / MODEL, {"model": cfg.model})
    result = RunResult(
        val_acc=last["val_acc"],
        val_loss=last["val_loss"],
        train_loss=last["train_loss"],
        test_acc=test_acc,
        test_loss=test_loss,
        epochs=len(history),
        diverged=diverged,
        checkpoint=_kept(out, keep_checkpoint, diverged),
        train_s=sum(row["epoch_s"] for row in history),
    )
    write_json(out / RESULT, result.to_dict())
    if not keep_checkpoint:  # result.json first: a kill here loses nothing
        (out / CHECKPOINT).unlink(missing_ok=True)
    return result


def _kept(out: Path, keep_checkpoint: bool, diverged: bool) -> str:
    """The weights file a finished run leaves: its checkpoint, its model, or none (diverged)."""
    if keep_checkpoint:
        return str(out / CHECKPOINT)
    return "" if diverged else str(out / MODEL)


STALL_EPOCHS = 3  # epochs at chance after which a run is called stalled, once


def stall_note(
    history: list[dict[str, Any]], chance: float, cfg: RunConfig, images: int | None = None
) -> str:
    """A one-time note when validation accuracy has sat at chance (``at_chance`` on ``images``
    validation images) for the first ``STALL_EPOCHS`` epochs, with the likely cause for this
    run's model: plain SqueezeNet at a high learning rate can stall (the study saw many such
    cells, and modern-compare has seeds that stalled and never caught up); another model at
    chance more often has a rate too low for the budget, or too high."""
    if len(history) != STALL_EPOCHS or any(row.get("diverged") for row in history):
        return ""
    if any(left_chance(row.get("val_acc") or 0.0, chance, images) for row in history):
        return ""
    head = (
        f"note: validation accuracy is still at chance ({chance:g}%) after {STALL_EPOCHS} "
        f"epochs at lr {cfg.lr:g}: this run may have stalled"
    )
    hint = model_info(cfg.model).stall_hint(cfg.to_dict())
    if hint:
        return f"{head} {hint}"
    return (
        f"{head} ({cfg.model} with a learning rate too high or too low for it, or too few "
        "epochs, can). Watch the next epochs; another --lr may train."
    )


def _earlier_resumes(out: Path) -> list[int]:
    """The epochs after which this run was resumed before (its provenance's record)."""
    try:
        return list(json.loads((out / CONFIG).read_text()).get("resumed_after", []))
    except (OSError, ValueError):
        return []


def _resumed_precision(out: Path, precision: str, start: int, verbose: bool) -> str:
    """The precision a resumed run records. ``auto`` resolves per machine (bf16 on a GPU or an
    AMX CPU, fp32 on an AVX2 CPU): a run resumed on another kind computed its epochs at both,
    which is no exact resume, so it records both ('bf16 then fp32') and says so."""
    try:
        before = json.loads((out / CONFIG).read_text()).get("precision")
    except (OSError, ValueError):
        return precision
    if not before or before.rsplit(" then ", 1)[-1] == precision:
        return before or precision
    _log(
        f"note: epochs 1-{start} of this run were computed at {before}, and this machine goes "
        f"on at {precision}: its result mixes the two (recorded as precision "
        f"'{before} then {precision}')",
        verbose,
    )
    return f"{before} then {precision}"


def _start_line(cfg: RunConfig, parts: _Parts, run_provenance: dict[str, Any]) -> str:
    """What a run trains, on what, and where it computes (a CPU without bf16 units computes
    in fp32 under ``auto``, several times slower than one with them)."""
    sizes = " / ".join(f"{len(b.labels):,}" for b in (parts.train, parts.val, parts.test))
    why = ""
    if (
        cfg.precision == "auto"
        and run_provenance["precision"] == "fp32"
        and run_provenance["device"] == "cpu"
    ):
        why = " (auto: this CPU has no bf16 matrix units)"
    return (
        f"training {variant_of(cfg.model, cfg.to_dict())} on {cfg.data} "
        f"({sizes} train / val / test images), {cfg.epochs} epoch{'s' * (cfg.epochs != 1)}, on "
        f"{machine_of(run_provenance)}{why}"
    )


def _format_row(row: dict[str, Any], epochs: int) -> str:
    if row["diverged"]:
        return f"epoch {row['epoch']}/{epochs}: diverged (non-finite loss)"
    return (
        f"epoch {row['epoch']}/{epochs}: train_loss {row['train_loss']:.4f} "
        f"train_acc {row['train_acc']:.2f} val_loss {row['val_loss']:.4f} "
        f"val_acc {row['val_acc']:.2f} lr {row['lr']:.3g} ({row['epoch_s']:.1f}s)"
    )


def _log(message: str, enabled: bool = True) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)
