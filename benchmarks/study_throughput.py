"""Study throughput on this device: one run alone vs N runs packed, and each preset's wall time.

Prints one JSON object:
  device            what ran (CPU model and cores, or the GPU's name)
  models            per model (squeezenet1_0, squeezenet1_0 with batch norm, alexnet; 64x64,
                    batch 64) and precision: training images/s of one run alone, the aggregate
                    of N runs packed on the device (N processes, the cores split between them
                    on a CPU), evaluation images/s, and the epoch time (45,000 training +
                    5,000 validation images) alone and packed
  presets           per preset (quick, paper, rigorous): runs, run-epochs, training images,
                    the projected wall time with one run at a time and with N packed, and
                    the --runs-per-device to use (N only where packing projects faster)

The projection counts training and validation passes only (no data decoding, process start or
test passes) at batch 64; a grid's larger batches usually run faster per image. SqueezeNet
variants not measured (1.1, other Fire counts, bypass) use the rate of squeezenet1_0 with or
without batch norm scaled by their multiply-accumulates.

Usage: python benchmarks/study_throughput.py [--device cuda] [--packed N] [--steps N]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from typing import Any

import torch

MODELS = {
    "squeezenet1_0": {"model": "squeezenet1_0"},
    "squeezenet1_0_bn": {"model": "squeezenet1_0", "batch_norm": True},
    "alexnet": {"model": "alexnet"},
}
EPOCH_TRAIN, EPOCH_VAL = 45_000, 5_000  # the study's epoch: CIFAR-10's 45k / 5k split
SOURCE_IMAGES = {"cifar10": 50_000, "cifar100": 50_000, "synthetic": 2_000}


def measure(
    spec: dict[str, Any],
    device: str,
    precision: str,
    threads: int,
    steps: int,
    warmup: int,
    barrier: Any = None,
) -> dict[str, float]:
    """Training and evaluation images/s of one model, squeezelab's own step and pipeline."""
    from squeezelab.data import Augment, Batches, ImageSet, Preprocess
    from squeezelab.models import get_model
    from squeezelab.training.runtime import autocast, configure_backend
    from squeezelab.training.step import sgd, train_step

    torch.set_num_threads(threads)
    dev = torch.device(device)
    configure_backend(precision, dev)
    torch.manual_seed(0)
    options = {k: v for k, v in spec.items() if k != "model"}
    model = get_model(spec["model"], num_classes=10, **options)
    model = model.to(dev, memory_format=torch.channels_last)
    opt = sgd(model.parameters(), dev, lr=0.001, momentum=0.9)
    rng = torch.Generator().manual_seed(0)
    n = 64 * 8
    pixels = torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=rng).numpy()
    images = ImageSet(pixels, (torch.arange(n) % 10).numpy(), [str(i) for i in range(10)])
    pre = Preprocess(64, dev)
    train = Batches.of(images, 64, pre, rng, augment=Augment())
    evals = Batches.of(images, 256, pre)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def batches(source: Batches, count: int):
        done = 0
        while True:
            for batch in source:
                if done == count:
                    return
                done += 1
                yield batch

    model.train()
    for x, y in batches(train, warmup):
        train_step(model, opt, x, y, precision, dev)
    sync()
    if barrier is not None:
        barrier.wait()  # packed runs time the same window
    t0 = time.perf_counter()
    for x, y in batches(train, steps):
        train_step(model, opt, x, y, precision, dev)
    sync()
    train_s = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        t0, seen = time.perf_counter(), 0
        for x, _ in batches(evals, max(2, steps // 4)):
            with autocast(precision, dev):
                model(x)
            seen += len(x)
        sync()
        eval_s = time.perf_counter() - t0
    return {"train_img_s": steps * 64 / train_s, "eval_img_s": seen / eval_s}


def _worker(args: tuple, barrier: Any, out: Any) -> None:
    out.put(measure(*args, barrier=barrier))


def packed(spec: dict, device: str, precision: str, n: int, threads: int, steps: int,
           warmup: int) -> dict[str, float]:  # fmt: skip
    """Aggregate images/s of ``n`` runs training at once on the device, one process each."""
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(n), ctx.Queue()
    args = (spec, device, precision, threads, steps, warmup)
    procs = [ctx.Process(target=_worker, args=(args, barrier, out)) for _ in range(n)]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return {k: sum(r[k] for r in results) for k in ("train_img_s", "eval_img_s")}


def epoch_s(rates: dict[str, float]) -> float:
    return EPOCH_TRAIN / rates["train_img_s"] + EPOCH_VAL / rates["eval_img_s"]


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    from squeezelab.training.runtime import cpu_name

    return f"{cpu_name()}, {os.cpu_count()} cores"


def _images(cfg: Any) -> tuple[int, int]:
    """(training, validation) images of one run of a plan."""
    name = cfg.data.split(":")[0]
    pool = SOURCE_IMAGES.get(name, EPOCH_TRAIN + EPOCH_VAL)
    if cfg.data.startswith("synthetic:"):
        pool = int(cfg.data.split(":")[1])
    val = round(pool * cfg.val_fraction)
    own_test = name in SOURCE_IMAGES  # these sources bring their own test images
    train = pool - val - (0 if own_test else round(pool * cfg.test_fraction))
    return min(train, cfg.train_subset or train), val


def project(preset: str, rates: dict[str, dict[str, dict[str, float]]], auto: str) -> dict:
    """Projected training + validation time of every run a preset plans (hours)."""
    from squeezelab.models import count_macs, get_model
    from squeezelab.reproduce import resolve

    macs_cache: dict[str, int] = {}

    def macs(model: str, opts: dict[str, Any]) -> int:
        name = json.dumps([model, opts], sort_keys=True)
        if name not in macs_cache:
            macs_cache[name] = count_macs(get_model(model, num_classes=10, **opts), 64)
        return macs_cache[name]

    total_s, runs, epochs, images = 0.0, 0, 0, 0
    for spec in resolve(preset):
        for cfg in spec.expand():
            precision = auto if cfg.precision == "auto" else cfg.precision
            family = "alexnet" if cfg.model == "alexnet" else (
                "squeezenet1_0_bn" if cfg.batch_norm else "squeezenet1_0")  # fmt: skip
            measured = rates[family][precision]
            scale = 1.0
            if cfg.model != "alexnet":
                reference = macs("squeezenet1_0", {"batch_norm": True} if cfg.batch_norm else {})
                scale = macs(cfg.model, cfg.model_options()) / reference
            train, val = _images(cfg)
            per_epoch = scale * train / measured["train_img_s"] + val / measured["eval_img_s"]
            total_s += cfg.epochs * per_epoch
            runs, epochs, images = runs + 1, epochs + cfg.epochs, images + cfg.epochs * train
    return {"runs": runs, "run_epochs": epochs, "train_images": images, "hours": total_s / 3600}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="cpu, cuda, ... (default: cuda when present)",
    )
    parser.add_argument(
        "--packed", type=int, help="runs packed on the device (default: 8 on a GPU, cores on CPU)"
    )
    parser.add_argument("--steps", type=int, default=None, help="timed steps (20 CPU, 200 GPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (3 CPU, 30 GPU)")
    parser.add_argument(
        "--presets", default="quick,paper,rigorous", help="presets to project, comma-separated"
    )
    args = parser.parse_args()
    from squeezelab.studies.executors import cpu_count
    from squeezelab.training.runtime import resolve_precision

    t0 = time.perf_counter()
    gpu = args.device.startswith("cuda")
    cores = cpu_count()  # the cores this process may use (taskset), as the study runner
    n = args.packed or (8 if gpu else cores)
    steps = args.steps or (200 if gpu else 20)
    warmup = args.warmup or (30 if gpu else 3)
    auto = resolve_precision("auto", torch.device(args.device))
    precisions = sorted({"fp32", auto})
    models: dict[str, dict[str, dict[str, float]]] = {}
    for name, spec in MODELS.items():
        models[name] = {}
        for precision in precisions:
            alone = measure(spec, args.device, precision, cores, steps, warmup)
            pack = packed(spec, args.device, precision, n, max(1, cores // n), steps, warmup)
            models[name][precision] = {
                "train_img_s": round(alone["train_img_s"], 1),
                "eval_img_s": round(alone["eval_img_s"], 1),
                "packed_train_img_s": round(pack["train_img_s"], 1),
                "packed_eval_img_s": round(pack["eval_img_s"], 1),
                "packed_speedup": round(pack["train_img_s"] / alone["train_img_s"], 2),
                "epoch_s": round(epoch_s(alone), 1),
                "packed_epoch_s_aggregate": round(epoch_s(pack), 1),
            }
            # Progress on stderr, so a run cut short still shows what it measured.
            print(f"{name} {precision}: {json.dumps(models[name][precision])}", file=sys.stderr)
    rates_packed = {
        f: {p: {"train_img_s": r["packed_train_img_s"], "eval_img_s": r["packed_eval_img_s"]}
            for p, r in per.items()} for f, per in models.items()
    }  # fmt: skip
    presets = {}
    for preset in args.presets.split(","):
        alone = project(preset, models, auto)
        pack = project(preset, rates_packed, auto)
        pays = pack["hours"] < alone["hours"]  # the packing is used only where it is faster
        presets[preset] = {
            "runs": alone["runs"],
            "run_epochs": alone["run_epochs"],
            "train_images": alone["train_images"],
            "projected_h_alone": round(alone["hours"], 2),
            "projected_h_packed": round(pack["hours"], 2),
            "runs_per_device": n if pays else 1,
            "projected_h": round(min(alone["hours"], pack["hours"]), 2),
        }
    print(
        json.dumps(
            {
                "device": device_name(args.device),
                "auto_precision": auto,
                "packed_runs": n,
                "models": models,
                "presets": presets,
                "batch_size": 64,
                "image_size": 64,
                "steps": steps,
                "wall_s": round(time.perf_counter() - t0, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
