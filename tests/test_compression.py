"""Compression: exact pruning, fixed masks, codebooks, Huffman, the file format, exports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from squeezelab.compression import (
    FormatError,
    compress,
    huffman,
    kmeans_1d,
    load_compressed,
    magnitude_masks,
    read_compressed,
    share_weights,
    sparsity_of,
    write_compressed,
)
from squeezelab.compression.prune import apply_masks, make_permanent, prunable
from squeezelab.compression.share import freeze_shared
from squeezelab.models import get_model
from squeezelab.training import from_dict, train

from .conftest import last_json, run_cli


@pytest.mark.parametrize("scope", ["per_layer", "global"])
def test_pruning_reaches_exact_sparsity(scope: str) -> None:
    torch.manual_seed(0)
    model = get_model("squeezenet1_1", num_classes=10)
    masks = magnitude_masks(model, 0.67, scope)
    total = sum(m.numel() for m in masks.values())
    assert sum(int((m == 0).sum()) for m in masks.values()) == (
        round(0.67 * total)
        if scope == "global"
        else sum(round(0.67 * m.numel()) for m in masks.values())
    )
    if scope == "per_layer":
        for name, mask in masks.items():
            assert int((mask == 0).sum()) == round(0.67 * mask.numel()), name
    # The kept weights are the largest in magnitude.
    layer = prunable(model)["features.0"]
    kept = layer.weight.detach().abs()[masks["features.0"].bool()]
    dropped = layer.weight.detach().abs()[~masks["features.0"].bool()]
    assert kept.min() >= dropped.max()


def test_masks_stay_fixed_during_training() -> None:
    torch.manual_seed(0)
    model = get_model("squeezenet1_1", num_classes=10)
    masks = magnitude_masks(model, 0.5)
    apply_masks(model, masks, fixed=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.arange(4))
        opt.zero_grad()
        loss.backward()
        opt.step()
    make_permanent(model)
    for name, m in prunable(model).items():
        assert torch.all(m.weight[masks[name] == 0] == 0), name
    assert sparsity_of(model) == pytest.approx(0.5, abs=1e-4)
    assert "features.0.weight" in model.state_dict()  # plain keys again


def test_kmeans_codebook_and_centroid_fine_tuning() -> None:
    torch.manual_seed(0)
    values = torch.randn(5000)
    centroids, index = kmeans_1d(values, 16)
    assert centroids.shape == (16,) and index.max() < 16
    # Lloyd's fixed point: each centroid is the mean of the values assigned to it, and the
    # codebook quantizes better than its linear initialization.
    for c in range(16):
        members = values[index == c]
        if len(members):
            assert centroids[c].item() == pytest.approx(members.double().mean().item(), abs=1e-3)
    linear = torch.linspace(float(values.min()), float(values.max()), 16)
    nearest = linear[(values[:, None] - linear[None, :]).abs().argmin(1)]
    assert ((values - centroids[index]) ** 2).mean() < 0.5 * ((values - nearest) ** 2).mean()
    model = get_model("squeezenet1_1", num_classes=10)
    apply_masks(model, magnitude_masks(model, 0.6), fixed=False)
    shared = share_weights(model, bits=4)
    for name, p in shared.items():
        assert p.centroids.shape == (16,), name
        assert len(torch.unique(prunable(model)[name].weight)) <= 16 + 1  # + the pruned zero
    before = shared["features.0"].centroids.detach().clone()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.arange(4))
    loss.backward()
    opt.step()
    assert not torch.equal(before, shared["features.0"].centroids)
    freeze_shared(model)
    w = prunable(model)["features.0"].weight
    assert len(torch.unique(w[w != 0])) <= 16


@pytest.mark.parametrize("alphabet", [1, 2, 7, 65, 300])
def test_huffman_round_trips_random_streams(alphabet: int) -> None:
    rng = np.random.default_rng(alphabet)
    symbols = rng.zipf(1.5, 20000) % alphabet
    lengths = huffman.code_lengths(np.bincount(symbols, minlength=alphabet))
    data, n_bits = huffman.encode(symbols, lengths)
    assert np.array_equal(huffman.decode(data, n_bits, len(symbols), lengths), symbols)
    # Kraft equality for a complete prefix code (more than one symbol used).
    used = lengths[lengths > 0].astype(float)
    if len(used) > 1:
        assert np.sum(2.0**-used) == pytest.approx(1.0)
    entropy = -np.sum((p := np.bincount(symbols) / len(symbols))[p > 0] * np.log2(p[p > 0]))
    assert n_bits / len(symbols) <= max(entropy, 0) + 1.0


def test_huffman_caps_code_lengths() -> None:
    counts = np.array([2**i for i in range(40)], dtype=np.int64)  # would need 39-bit codes
    lengths = huffman.code_lengths(counts)
    assert lengths.max() <= huffman.MAX_LEN
    symbols = np.repeat(np.arange(40), 3)
    data, n = huffman.encode(symbols, lengths)
    assert np.array_equal(huffman.decode(data, n, len(symbols), lengths), symbols)


def test_file_round_trip_with_filler_entries(tmp_path: Path) -> None:
    w = torch.zeros(3, 200)
    w[0, 0], w[1, 150], w[2, 199] = 0.5, -0.25, 0.5  # gaps far beyond 3-bit offsets
    state = {"w": w, "b": torch.arange(3.0), "n": torch.tensor(7)}
    size = write_compressed(tmp_path / "f.sqzc", state, {"w": (2, 3)}, {"k": 1})
    assert size == (tmp_path / "f.sqzc").stat().st_size
    back, meta = read_compressed(tmp_path / "f.sqzc")
    assert meta == {"k": 1}
    assert torch.equal(back["w"], w) and torch.equal(back["b"], state["b"]) and back["n"] == 7


def test_compress_squeezenet_imagenet_head_under_500kb(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "sq.pth"
    torch.save(torchvision.models.squeezenet1_0().state_dict(), path)
    r = compress(str(path), tmp_path / "sq.sqzc", 0.67, 6, model="squeezenet1_0")
    assert r["dense_bytes"] == 1_248_424 * 4
    assert r["compressed_bytes"] == (tmp_path / "sq.sqzc").stat().st_size < 500_000
    assert r["sparsity"] == pytest.approx(0.67, abs=1e-4)
    assert r["roundtrip_max_abs_diff"] == 0.0
    restored = load_compressed(tmp_path / "sq.sqzc")
    assert len(torch.unique(restored.features[0].weight)) <= 64 + 1


def test_compress_cli_on_a_run_with_finetune(tmp_path: Path) -> None:
    cfg = from_dict(
        {
            "data": "synthetic:400",
            "image_size": 32,
            "batch_size": 32,
            "epochs": 2,
            "lr": 0.01,
            "batch_norm": True,
        }
    )
    train(cfg, tmp_path / "run", verbose=False)
    out = tmp_path / "c.sqzc"
    proc = run_cli(
        "compress",
        str(tmp_path / "run"),
        "--sparsity",
        "0.5",
        "--bits",
        "5",
        "--finetune-epochs",  # no --data: a run fine-tunes on its own data
        "1",
        "--out",
        str(out),
        "--json",
    )
    r = last_json(proc.stdout)
    # Progress in a log: one line per fine-tuning epoch of each stage.
    assert "fine-tune after pruning 1/1: train_loss" in proc.stderr
    assert "fine-tune shared weights 1/1: train_loss" in proc.stderr
    assert set(r) == {
        "dense_bytes",
        "compressed_bytes",
        "ratio",
        "accuracy_before",
        "accuracy_after",
        "sparsity",
        "bits",
    }
    assert r["compressed_bytes"] == out.stat().st_size and r["ratio"] > 5
    # Both accuracies are the test split's: before, the run's own test accuracy; after, what
    # the written file scores when read back.
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert r["accuracy_before"] == pytest.approx(result["test_acc"])
    assert r["accuracy_after"] == pytest.approx(_test_accuracy(load_compressed(out), cfg))


def _test_accuracy(model: torch.nn.Module, cfg) -> float:
    from squeezelab.data import Batches, Preprocess
    from squeezelab.training.loop import evaluate, load_splits
    from squeezelab.training.runtime import resolve_precision

    dev = torch.device("cpu")
    batches = Batches.of(load_splits(cfg).test, 256, Preprocess(cfg.image_size, dev))
    return evaluate(model, batches, dev, resolve_precision(cfg.precision, dev))[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sparsity", "1.0"], "sparsity must lie in"),
        (["--sparsity", "-0.1"], "sparsity must lie in"),
        (["--bits", "0"], "bits must be an integer in 1..16"),
        (["--bits", "17"], "bits must be an integer in 1..16"),
        (["--finetune-epochs", "1"], "a loose weights file records no data set"),
    ],
)
def test_compress_bad_arguments(tmp_path: Path, args: list[str], message: str) -> None:
    torch.save(get_model("squeezenet1_1").state_dict(), tmp_path / "m.pth")
    bad = run_cli(
        "compress",
        str(tmp_path / "m.pth"),
        "--model",
        "squeezenet1_1",
        *args,
        "--out",
        str(tmp_path / "x"),
        check=False,
    )
    assert bad.returncode == 2 and message in bad.stderr


def test_compress_missing_checkpoint_and_corrupt_file(tmp_path: Path) -> None:
    bad = run_cli(
        "compress",
        str(tmp_path / "nope.pth"),
        "--model",
        "alexnet",
        "--out",
        str(tmp_path / "x"),
        check=False,
    )
    assert bad.returncode == 2 and "nope.pth" in bad.stderr
    (tmp_path / "x.sqzc").write_bytes(b"SQZC\x00\x00\x10\x00{")
    with pytest.raises(FormatError):
        read_compressed(tmp_path / "x.sqzc")


@pytest.mark.parametrize("fmt", ["onnx", "int8"])
def test_export_matches_original(tmp_path: Path, fmt: str) -> None:
    torch.manual_seed(0)
    torch.save(get_model("squeezenet1_1", num_classes=10).state_dict(), tmp_path / "m.pth")
    out = tmp_path / f"m.{fmt}"
    r = last_json(
        run_cli(
            "export",
            str(tmp_path / "m.pth"),
            "--model",
            "squeezenet1_1",
            "--format",
            fmt,
            "--out",
            str(out),
            "--json",
        ).stdout
    )
    assert out.is_file() and r["bytes"] == out.stat().st_size
    assert r["checked_on"].startswith("seeded noise")  # a weights file: said, not hidden
    if fmt == "onnx":
        assert r["max_abs_diff"] < 1e-4 and r["top1_agreement"] == 1.0
    else:
        assert r["top1_agreement"] >= 0.8


def test_int8_quantizes_fire_concat_and_bypass() -> None:
    from squeezelab.compression.export import calibration_batches, quantize_int8

    torch.manual_seed(0)
    model = get_model("squeezenet1_1", num_classes=10, bypass="simple", batch_norm=True).eval()
    q = quantize_int8(model, calibration_batches(64, n=2, batch=8))
    x = torch.randn(8, 3, 64, 64)
    out = q(x)
    assert out.shape == (8, 10) and torch.isfinite(out).all()
    code = q.code
    assert "quantized" in str(type(q.features)) or "quantize_per_tensor" in code


def test_bench_infer_reports_every_runtime(tmp_path: Path) -> None:
    torch.save(get_model("squeezenet1_1", num_classes=10).state_dict(), tmp_path / "m.pth")
    r = json.loads(
        run_cli(
            "bench-infer", str(tmp_path / "m.pth"), "--model", "squeezenet1_1", "--repeats", "3"
        ).stdout
    )
    assert set(r) == {"image_size", "threads", "fp32", "int8", "onnxruntime"}
    assert r["image_size"] == 64 and r["threads"] == torch.get_num_threads()
    for runtime in ("fp32", "int8", "onnxruntime"):
        # a batch of 64 costs more than one image: the two timings are not swapped
        per_image_b64 = 1e3 / r[runtime]["throughput_img_s_b64"]
        assert 0 < per_image_b64 * 64 > r[runtime]["latency_ms_b1"], runtime


def test_bench_times_each_runtime_on_its_own_outputs_and_reports_its_units(monkeypatch) -> None:
    from squeezelab.compression import bench

    outputs: dict[int, list] = {1: [], 64: []}

    def fake_time(fn, warmup: int = 10, repeats: int = 30) -> float:
        out = fn()  # each runtime really runs on its batch
        out = out[0] if isinstance(out, list) else out  # ONNX Runtime returns a list
        outputs[len(out)].append(out)
        return 0.002 if len(out) == 1 else 0.064

    time_call = bench.time_call
    monkeypatch.setattr(bench, "time_call", fake_time)
    r = bench.bench_model(get_model("squeezenet1_1", num_classes=10), 32, repeats=3)
    for runtime in ("fp32", "int8", "onnxruntime"):
        assert r[runtime] == {"latency_ms_b1": pytest.approx(2.0), "throughput_img_s_b64": 1000}
    assert [tuple(o.shape) for o in outputs[64]] == [(64, 10)] * 3
    # and the clock: the median of the timed calls, the warm-up left out
    ticks = iter([0.0, 9.0, 10.0, 10.5, 20.0, 21.0, 30.0, 30.25])
    monkeypatch.setattr(bench.time, "perf_counter", lambda: next(ticks))
    calls = []
    assert time_call(lambda: calls.append(1), warmup=2, repeats=4) == 0.75
    assert len(calls) == 6


def _small_sqzc(path: Path) -> dict:
    torch.manual_seed(0)
    w = torch.randn(8, 40)
    w[w.abs() < 0.8] = 0
    w = torch.round(w.clamp(-2.5, 2.5) * 2) / 2  # at most 8 shared values: +-1 .. +-2.5
    state = {"w": w, "b": torch.arange(8.0)}
    write_compressed(path, state, {"w": (3, 3)}, {"k": 1, "num_classes": 8})
    return state


def test_every_single_bit_flip_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "f.sqzc"
    state = _small_sqzc(path)
    data = path.read_bytes()
    rng = np.random.default_rng(0)
    for bit in rng.choice(len(data) * 8, size=200, replace=False):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(flipped))
        try:
            back, _ = read_compressed(path)
        except FormatError:
            continue
        assert all(torch.equal(back[k], state[k]) for k in state), f"bit {bit} went unnoticed"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bits": 40}, "bits = 40"),
        ({"entries": 10**11}, "entries"),
        ({"weight_bits": 10**10}, "weight_bits"),
        ({"shape": [10**6, 10**6]}, "elements"),
        ({"kind": "bogus"}, "unknown kind"),
        ({"shape": "x"}, "bad shape"),
        ({"sizes": [1, 2]}, "blob sizes"),
    ],
)
def test_bogus_header_values_are_refused_before_allocating(
    tmp_path: Path, change: dict, message: str
) -> None:
    import json
    import struct
    import zlib

    path = tmp_path / "f.sqzc"
    _small_sqzc(path)
    data = path.read_bytes()[:-4]
    (n,) = struct.unpack("<I", data[4:8])
    header = json.loads(data[8 : 8 + n])
    header["tensors"][0].update(change)  # the sparse layer
    head = json.dumps(header).encode()
    body = data[:4] + struct.pack("<I", len(head)) + head + data[8 + n :]
    path.write_bytes(body + struct.pack("<I", zlib.crc32(body)))  # a valid CRC: crafted
    with pytest.raises(FormatError, match=message):
        read_compressed(path)


def test_version_1_files_are_still_read(tmp_path: Path) -> None:
    path = tmp_path / "f.sqzc"
    state = _small_sqzc(path)
    data = path.read_bytes()
    path.write_bytes(b"SQZC" + data[4:-4])  # the v1 layout: no CRC
    back, meta = read_compressed(path)
    assert meta["k"] == 1 and all(torch.equal(back[k], state[k]) for k in state)


def test_compress_takes_the_model_file_squeezelab_wrote(tmp_path: Path) -> None:
    cfg = from_dict({"data": "synthetic:200", "image_size": 32, "epochs": 1, "batch_norm": True})
    train(cfg, tmp_path / "run", verbose=False)
    out = tmp_path / "m.sqzc"
    r = last_json(
        run_cli("compress", str(tmp_path / "run" / "model.safetensors"), "--sparsity", "0.5",
                "--bits", "5", "--out", str(out), "--json").stdout
    )  # fmt: skip
    assert r["compressed_bytes"] == out.stat().st_size
    # `evaluate` takes the .sqzc as it takes the run: the run's own split, the same output.
    of_run = last_json(run_cli("evaluate", str(tmp_path / "run"), "--json").stdout)
    of_sqzc = last_json(run_cli("evaluate", str(out), "--json").stdout)
    assert set(of_sqzc) == set(of_run) and of_sqzc["n"] == of_run["n"]
    assert 0.0 <= of_sqzc["accuracy"] <= 100.0
    val = run_cli("evaluate", str(out), "--split", "val").stdout
    assert val.startswith("val: accuracy ")
    # export's agreement check reads the run's validation images, through the .sqzc too
    exported = last_json(run_cli("export", str(out), "--format", "int8", "--out",
                                 str(tmp_path / "m.pt"), "--json").stdout)  # fmt: skip
    assert exported["checked_on"] == "validation images of synthetic:200 (20)"


def test_decoded_values_are_validated_even_under_a_valid_checksum() -> None:
    """A v2 file's CRC proves the bytes are the writer's, not that the writer was sane: a NaN
    codebook, a code length no code matches, or a stream longer than its symbols is refused."""
    import numpy as np

    from squeezelab.compression import huffman
    from squeezelab.compression.storage import FormatError, decode_layer, encode_layer

    w = torch.zeros(64)
    w[::3] = torch.tensor([0.5, -0.25, 1.0] * 8)[: len(w[::3])]
    entry, blobs = encode_layer(w, 4, 4)
    assert torch.equal(decode_layer(entry, blobs), w)
    nan_book = bytearray(blobs[0])
    nan_book[0:4] = np.float32("nan").tobytes()
    with pytest.raises(FormatError, match="codebook value is not finite"):
        decode_layer(entry, [bytes(nan_book), *blobs[1:]])
    lengths = np.array([1, 2, 2, 0])  # symbols 0-2: a complete code
    data, n_bits = huffman.encode(np.array([0, 1, 2, 0]), lengths)
    assert list(huffman.decode(data, n_bits, 4, lengths)) == [0, 1, 2, 0]
    with pytest.raises(ValueError, match="holds .* bits but its 3 symbols take"):
        huffman.decode(data, n_bits, 3, lengths)  # a bit count that does not match
    with pytest.raises(ValueError, match="no Huffman code matches"):
        huffman.decode(b"\xff", 8, 2, np.array([2, 2, 0, 0]))  # 11 starts no code


def test_a_version_1_file_says_it_has_no_checksum(tmp_path: Path) -> None:
    from squeezelab.compression.storage import MAGIC, MAGIC_V1, read_compressed, write_compressed

    path = tmp_path / "m.sqzc"
    write_compressed(path, {"w": torch.ones(3)}, {}, {"model": "x", "num_classes": 2})
    raw = path.read_bytes()
    path.write_bytes(MAGIC_V1 + raw[len(MAGIC) : -4])  # v1: the old magic, no CRC
    with pytest.warns(UserWarning, match="version-1 compressed model, written without a checksum"):
        state, _ = read_compressed(path)
    assert torch.equal(state["w"], torch.ones(3))


def test_fine_tuning_uses_the_runs_own_training_subset(tmp_path: Path) -> None:
    from squeezelab.compression.finetune import Tuner
    from squeezelab.compression.pipeline import load_source_model

    cfg = from_dict({"data": "synthetic:200", "image_size": 32, "epochs": 1, "train_subset": 48})
    train(cfg, tmp_path / "run", verbose=False)
    src = load_source_model(str(tmp_path / "run"))
    tuner = Tuner(src, cfg.data, None, "cpu")
    assert len(tuner.splits.train) == 48  # not the 160 images of the whole training split
    whole = Tuner(src.__class__(**{**src.__dict__, "config": cfg.replace(train_subset=None)}),
                  cfg.data, None, "cpu")  # fmt: skip
    assert len(whole.splits.test) == len(tuner.splits.test)  # the subset leaves test alone
