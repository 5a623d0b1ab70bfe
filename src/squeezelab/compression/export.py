"""Deployment exports: post-training int8 quantization (torch.ao FX) and ONNX, each checked.

FX graph mode quantization traces the model, so Fire's ``torch.cat`` and the bypass addition
are quantized without editing the module (the role ``FloatFunctional`` plays in eager mode).
Convolutions are fused with their ReLU (and batch norm) before calibration.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..fileio import write_with


def quantize_int8(
    model: nn.Module, calibration: list[torch.Tensor], backend: str = "x86"
) -> nn.Module:
    """Post-training static int8 quantization, calibrated on ``calibration`` batches."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = backend
    model = model.float().eval().to(memory_format=torch.contiguous_format)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(model, get_default_qconfig_mapping(backend), (calibration[0],))
        with torch.no_grad():
            for x in calibration:
                prepared(x)
        return convert_fx(prepared)


def export_int8(model: nn.Module, calibration: list[torch.Tensor], out: str | Path) -> nn.Module:
    """Quantize and save as TorchScript (``torch.jit.load`` reads it back)."""
    q = quantize_int8(model, calibration)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript still carries int8 models
        scripted = torch.jit.trace(q, calibration[0][:1])
        write_with(out, lambda tmp: torch.jit.save(scripted, str(tmp)))
    return scripted


def export_onnx(model: nn.Module, image_size: int, out: str | Path) -> None:
    """Export to ONNX with a dynamic batch dimension."""
    x = torch.randn(1, 3, image_size, image_size)
    model = model.float().eval().to(memory_format=torch.contiguous_format)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_with(out, lambda tmp: torch.onnx.export(
            model, (x,), str(tmp), input_names=["images"], output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17, dynamo=False,
        ))  # fmt: skip


def onnx_session(path: str | Path) -> Any:
    import onnxruntime as ort  # missing: ModuleNotFoundError, which the CLI maps to [onnx]

    opts = ort.SessionOptions()
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def compare_outputs(reference: torch.Tensor, other: torch.Tensor) -> dict[str, float]:
    """How closely an export reproduces the original: max abs diff and top-1 agreement."""
    ref, oth = reference.float(), other.float()
    return {
        "max_abs_diff": float((ref - oth).abs().max()),
        "top1_agreement": float((ref.argmax(1) == oth.argmax(1)).float().mean()),
    }


def check_export(model: nn.Module, fmt: str, path: Path, x: torch.Tensor) -> dict[str, float]:
    """Run the original and the exported model on ``x`` and compare."""
    model = model.float().eval()
    with torch.no_grad():
        ref = model(x)
        if fmt == "onnx":
            out = torch.from_numpy(onnx_session(path).run(None, {"images": x.numpy()})[0])
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                out = torch.jit.load(str(path))(x)
    return compare_outputs(ref, out)


def calibration_batches(
    image_size: int, data_batches: Any = None, n: int = 8, batch: int = 32
) -> list[torch.Tensor]:
    """Calibration inputs: real preprocessed batches when given, else random normal ones."""
    if data_batches is not None:
        out = []
        for x, _ in data_batches:
            out.append(x.float().contiguous())
            if len(out) == n:
                break
        return out
    g = torch.Generator().manual_seed(0)
    return [torch.randn(batch, 3, image_size, image_size, generator=g) for _ in range(n)]
