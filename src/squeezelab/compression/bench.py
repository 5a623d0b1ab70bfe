"""Inference benchmark on the CPU: latency at batch 1 and throughput at batch 64.

Float32 (channels_last), int8 (FX post-training quantization) and ONNX Runtime when
installed. Warm-up first, then the median of repeated timed runs (GUIDE: time honestly).
"""

from __future__ import annotations

import functools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .export import calibration_batches, export_onnx, onnx_session, quantize_int8


def time_call(fn: Callable[[], Any], warmup: int = 10, repeats: int = 30) -> float:
    """Median seconds of ``fn()`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_model(
    model: nn.Module, image_size: int, repeats: int = 30, calibration: list | None = None
) -> dict[str, Any]:
    """Latency (ms, batch 1) and throughput (images/s, batch 64) per runtime."""
    model = model.float().eval()
    x1 = torch.randn(1, 3, image_size, image_size)
    x64 = torch.randn(64, 3, image_size, image_size)
    runners: dict[str, Callable[[torch.Tensor], Any]] = {}
    fp32 = model.to(memory_format=torch.channels_last)
    runners["fp32"] = lambda x: fp32(x.contiguous(memory_format=torch.channels_last))
    q = quantize_int8(model, calibration or calibration_batches(image_size))
    runners["int8"] = q
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "m.onnx"
            export_onnx(model, image_size, path)
            sess = onnx_session(path)
        runners["onnxruntime"] = lambda x: sess.run(None, {"images": x.numpy()})
    except ImportError:
        pass  # ONNX Runtime not installed: reported as absent
    results: dict[str, Any] = {"image_size": image_size, "threads": torch.get_num_threads()}
    with torch.no_grad():
        for name, run in runners.items():
            lat = time_call(functools.partial(run, x1), repeats=repeats)
            thr = time_call(functools.partial(run, x64), warmup=3, repeats=max(5, repeats // 3))
            results[name] = {"latency_ms_b1": lat * 1e3, "throughput_img_s_b64": 64 / thr}
    return results
