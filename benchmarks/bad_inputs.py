"""The bad-input matrix: hostile and careless inputs, each classified by what squeezelab does.

    python benchmarks/bad_inputs.py [--out matrix.json]

Every case runs the command a user would type (a subprocess) or, for file formats, the
library call, and is classified as: ``clear`` (a one-line error naming the problem, or the
correct result), ``traceback``, ``silent_wrong`` (exit 0 where an error was due), ``hang``
(over its time limit) and ``data_lost`` (a stored file changed by a failing command). Prints
one JSON object: the totals and every case.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import sqlite3
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

CLI = [sys.executable, "-m", "squeezelab"]
TRAIN = ["train", "--epochs", "1", "--image-size", "32", "--batch-size", "16"]


def sh(args: list[str], timeout: float = 300, env: dict | None = None) -> tuple[int, str]:
    """Run the CLI; (exit code, stderr), exit -1 on time-out."""
    try:
        p = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                           env={**os.environ, **(env or {})})  # fmt: skip
    except subprocess.TimeoutExpired:
        return -1, ""
    return p.returncode, p.stderr


def sh_limited(args: list[str], env: dict, limit: int) -> tuple[int, str]:
    """Run the CLI with files limited to ``limit`` bytes (EFBIG, as a full disk's ENOSPC)."""
    import resource
    import signal

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    p = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300,
                       env={**os.environ, **env, "PYTHONDONTWRITEBYTECODE": "1"},
                       preexec_fn=apply)  # fmt: skip
    return p.returncode, p.stderr


def classify(code: int, err: str, expect_error: bool) -> str:
    if code == -1:
        return "hang"
    if "Traceback" in err or "unexpected error" in err:  # a bug, even when caught
        return "traceback"
    if expect_error:
        return "clear" if code != 0 and err.strip() else "silent_wrong"
    return "clear" if code == 0 else "traceback"


# --- inputs -------------------------------------------------------------------------------------


def png(size: tuple[int, int] = (16, 16), value: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def folder(root: Path, classes: dict[str, list[bytes]]) -> Path:
    for c, files in classes.items():
        (root / c).mkdir(parents=True, exist_ok=True)
        for i, data in enumerate(files):
            (root / c / f"{i}.png").write_bytes(data)
    return root


def tar(path: Path, entries: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as t:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


def good_entries() -> dict[str, bytes]:
    return {f"{c}/{i}.png": png(value=40 * k) for k, c in enumerate("abc") for i in range(6)}


def bomb_png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def zip_with(path: Path, mutate: Callable[[bytearray], None]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in good_entries().items():
            z.writestr(name, data * 4)
    raw = bytearray(path.read_bytes())
    mutate(raw)
    path.write_bytes(bytes(raw))
    return path


def set_zip_field(raw: bytearray, offset_in_header: int, central_offset: int, value: int) -> None:
    """Set a 2-byte field in every local (PK\\3\\4) and central (PK\\1\\2) header."""
    for sig, off in ((b"PK\x03\x04", offset_in_header), (b"PK\x01\x02", central_offset)):
        i = raw.find(sig)
        while i != -1:
            raw[i + off : i + off + 2] = struct.pack("<H", value)
            i = raw.find(sig, i + 4)


def cifar(path: Path, labels=None, data=None, truncate: bool = False) -> Path:
    rng = np.random.default_rng(0)
    members = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8),
                 b"labels": [i % 10 for i in range(20)]}  # fmt: skip
        if name == "data_batch_1":
            if labels is not None:
                batch[b"labels"] = labels
            if data is not None:
                batch[b"data"] = data
        members[name] = pickle.dumps(batch)
    members["batches.meta"] = pickle.dumps({b"label_names": [b"x"] * 10})
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as t:
        for name, blob in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            t.addfile(info, io.BytesIO(blob))
    if truncate:
        path.write_bytes(path.read_bytes()[:2000])
    return path


STUDY = """seeds = [0]
[base]
epochs = 1
image_size = 32
batch_size = 16
batch_norm = true
data = "synthetic:100"
[axes]
lr = [0.05, 0.01]
"""


# --- the matrix ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="squeezelab-bad-"))
    env = {"SQUEEZELAB_DATA_DIR": str(tmp / "cache")}
    cases: list[dict] = []

    def case(name: str, argv: list[str], expect_error: bool = True, **kw) -> None:
        code, err = sh(argv, env={**env, **kw.pop("env", {})}, **kw)
        cases.append({"case": name, "result": classify(code, err, expect_error),
                      "exit": code, "message": err.strip().splitlines()[-1:] or [""]})  # fmt: skip

    def train_on(name: str, data: Path | str, expect_error: bool = True, **kw) -> None:
        out = tmp / "runs" / name
        case(name, [*TRAIN, "--data", str(data), "--out", str(out)], expect_error, **kw)

    # Data
    mixed = folder(tmp / "mixed", {"a": [png()] * 6, "b": [png(value=200)] * 6})
    (mixed / "a" / "tiny.png").write_bytes(png((1, 1)))
    train_on("mixed image sizes (resized to the common one)", mixed, expect_error=False)
    empty = folder(tmp / "empty", {"a": [png()] * 4, "b": [png()] * 4})
    (empty / "c").mkdir()
    train_on("empty class folder", empty)
    train_on("one class", folder(tmp / "one", {"a": [png()] * 8}))
    train_on("archive entry ../", tar(tmp / "dd.tar", {**good_entries(), "../x/1.png": png()}))
    train_on("archive entry absolute", tar(tmp / "abs.tar", {**good_entries(), "/x/1.png": png()}))
    train_on("oversize entry", tar(tmp / "big.tar", {**good_entries(), "a/big.png": b"0" * 5000}),
             env={"SQUEEZELAB_MAX_IMAGE_BYTES": "4000"})  # fmt: skip
    train_on(
        "PNG declaring 30000x30000",
        tar(tmp / "bomb.tar", {**good_entries(), "a/b.png": bomb_png()}),
    )
    train_on(
        "corrupt JPEG/PNG bytes",
        tar(tmp / "bad.tar", {**good_entries(), "a/x.png": b"\x89PNG junk"}),
    )

    def corrupt_deflate(raw: bytearray) -> None:
        raw[60:90] = b"\xff" * 30

    train_on("zip: corrupt deflate", zip_with(tmp / "deflate.zip", corrupt_deflate))
    train_on("zip: encrypted", zip_with(tmp / "enc.zip", lambda r: set_zip_field(r, 6, 8, 1)))
    train_on("zip: unsupported compression",
             zip_with(tmp / "method.zip", lambda r: set_zip_field(r, 8, 10, 97)))  # fmt: skip
    train_on("data path missing", tmp / "nowhere.tar.gz")
    train_on("CIFAR label 57", cifar(tmp / "c1" / "cifar-10-python.tar.gz", labels=[57] * 20))
    train_on("CIFAR label -3", cifar(tmp / "c2" / "cifar-10-python.tar.gz", labels=[-3] * 20))
    nan = np.full((20, 3072), np.nan)
    train_on("CIFAR float NaN pixels", cifar(tmp / "c3" / "cifar-10-python.tar.gz", data=nan))
    train_on("CIFAR truncated archive", cifar(tmp / "c4" / "cifar-10-python.tar.gz", truncate=True))

    # Stores: every reader on every broken store; nothing may change on disk
    good_db = tmp / "good.db"
    (tmp / "s.toml").write_text(STUDY)
    sh(["study", "run", str(tmp / "s.toml"), "--db", str(good_db)], env=env)
    broken = {
        "random bytes": lambda p: p.write_bytes(bytes(range(256)) * 64),
        "truncated": lambda p: p.write_bytes(good_db.read_bytes()[:3000]),
        "a directory": lambda p: p.mkdir(),
        "another program's SQLite": lambda p: sqlite3.connect(p).execute("CREATE TABLE x (a)"),
    }
    for label, make in broken.items():
        path = tmp / f"store-{len(cases)}.db"
        make(path)
        before = path.read_bytes() if path.is_file() else None
        for cmd in (
            ["study", "status"],
            ["results", "export"],
            ["report", "--out", str(tmp / "r")],
            ["results", "merge", str(good_db)],  # the broken store as the one merged into
        ):
            case(f"store {label}: {cmd[0]} {cmd[1] if len(cmd) > 1 else ''}".strip(),
                 [*cmd, "--db", str(path)])  # fmt: skip
            if before is not None and path.read_bytes() != before:
                cases[-1]["result"] = "data_lost"
        target = tmp / f"target-{len(cases)}.db"  # the broken store as a merge's source
        target.write_bytes(good_db.read_bytes())
        kept = target.read_bytes()
        case(f"store {label}: merged from", ["results", "merge", str(path), "--db", str(target)])
        if target.read_bytes() != kept:
            cases[-1]["result"] = "data_lost"
    case("missing store: report", ["report", "--db", str(tmp / "none.db"), "--out", str(tmp / "r")])
    case("read a good store: status", ["study", "status", "--db", str(good_db)], False)

    # Checkpoints and weights
    import torch

    from squeezelab.training import from_dict, load_checkpoint, save_checkpoint, train
    from squeezelab.training.checkpoint import save_atomic

    cfg = {"data": "synthetic:100", "image_size": 32, "epochs": 2, "batch_size": 16}
    run = tmp / "runs" / "ck"
    train(from_dict(cfg), run, verbose=False, keep_checkpoint=True, progress=False)
    (run / "result.json").unlink()
    (run / "model.safetensors").unlink()
    ck = run / "checkpoint.safetensors"
    good = ck.read_bytes()
    flat = ["--data", "synthetic:100", "--image-size", "32", "--epochs", "2", "--batch-size", "16"]
    flipped = bytearray(good)
    flipped[-200] ^= 0x04
    ck.write_bytes(bytes(flipped))
    case(
        "checkpoint with a flipped weight byte: resume",
        ["train", *flat, "--out", str(run), "--resume"],
    )
    ck.write_bytes(good)
    state = load_checkpoint(ck)
    state.epoch = 99
    state.history = state.history * 50
    save_checkpoint(ck, state)
    case(
        "checkpoint claiming epoch 99 of 2: resume", ["train", *flat, "--out", str(run), "--resume"]
    )
    ck.write_bytes(good)
    from safetensors.torch import load_file

    tensors = load_file(str(ck))
    from safetensors import safe_open

    with safe_open(str(ck), "pt") as f:
        meta = {k: v for k, v in (f.metadata() or {}).items() if k != "sha256"}
    tensors.pop(next(k for k in tensors if k.startswith("model.")))
    save_atomic(tensors, ck, meta)  # a valid file that lacks a tensor
    case("checkpoint missing a tensor: resume", ["train", *flat, "--out", str(run), "--resume"])
    div = tmp / "runs" / "div"
    sh(["train", "--data", "synthetic:100", "--image-size", "32", "--epochs", "2", "--lr", "1e6",
        "--out", str(div)], env=env)  # fmt: skip
    case("evaluate a diverged run", ["evaluate", str(div)])
    case("compress a diverged run", ["compress", str(div), "--out", str(tmp / "d.sqzc")])
    case(
        "export a diverged run",
        ["export", str(div), "--format", "int8", "--out", str(tmp / "d.pt")],
    )
    ok_run = tmp / "runs" / "ok"
    sh(["train", *flat, "--out", str(ok_run)], env=env)
    model_file = str(ok_run / "model.safetensors")
    case("compress the model.safetensors squeezelab wrote",
         ["compress", model_file, "--out", str(tmp / "ok.sqzc")], False)  # fmt: skip
    case(
        "train --resume into a missing directory",
        ["train", *flat, "--out", str(tmp / "nope"), "--resume"],
    )
    case(
        "train --device cuda without a GPU",
        ["train", *flat, "--out", str(tmp / "cu"), "--device", "cuda"],
    )

    # Compressed files, through the library (bit flips and crafted headers)
    from squeezelab.compression import load_compressed
    from squeezelab.compression.storage import FormatError

    sqzc = tmp / "ok.sqzc"
    data = sqzc.read_bytes()
    reference = load_compressed(sqzc)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = reference(x)
    rng = np.random.default_rng(0)
    flips = Counter()
    for bit in rng.choice(len(data) * 8, size=200, replace=False):
        raw = bytearray(data)
        raw[bit // 8] ^= 1 << (bit % 8)
        sqzc.write_bytes(bytes(raw))
        try:
            with torch.no_grad():
                same = torch.equal(load_compressed(sqzc)(x), want)
            flips["identical" if same else "silent_wrong"] += 1
        except FormatError:
            flips["clear"] += 1
        except Exception:
            flips["traceback"] += 1
    for result, n in flips.items():
        cases += [{"case": ".sqzc single-bit flip", "result": "clear" if result == "identical"
                   else result, "exit": None, "message": [result]}] * n  # fmt: skip

    def crafted(label: str, change: Callable[[dict], None]) -> None:
        body = data[:-4]
        (n,) = struct.unpack("<I", body[4:8])
        header = json.loads(body[8 : 8 + n])
        change(header)
        head = json.dumps(header).encode()
        new = body[:4] + struct.pack("<I", len(head)) + head + body[8 + n :]
        sqzc.write_bytes(new + struct.pack("<I", zlib.crc32(new)))
        try:
            load_compressed(sqzc)
            result = "silent_wrong"
        except FormatError:
            result = "clear"
        except MemoryError:
            result = "hang"
        except Exception:
            result = "traceback"
        cases.append({"case": f".sqzc crafted header: {label}", "result": result, "exit": None,
                      "message": [""]})  # fmt: skip

    sparse = lambda h: next(t for t in h["tensors"] if t["kind"] == "sparse")  # noqa: E731
    crafted("entries 1e11", lambda h: sparse(h).update(entries=10**11))
    crafted("weight_bits 1e10", lambda h: sparse(h).update(weight_bits=10**10))
    crafted("bits 40", lambda h: sparse(h).update(bits=40))
    crafted("num_classes 1e8", lambda h: h["meta"].update(num_classes=10**8))
    crafted("kind bogus", lambda h: sparse(h).update(kind="bogus"))
    crafted(
        "dtype bogus",
        lambda h: next(t for t in h["tensors"] if t["kind"] == "dense").update(dtype="complex"),
    )
    crafted("shape bogus", lambda h: sparse(h).update(shape=[-1, "x"]))

    # Study files
    bad_studies = {
        "axes = 5": "axes = 5\n",
        "base = [...]": "base = [1, 2]\n",
        "points = [1, 2]": "points = [1, 2]\n",
        "best_of.fields = 5": '[best_of]\nstudy = "grid"\nfields = 5\n',
        "lr = inf": "[base]\nlr = inf\n",
        "epochs = 1e20": "[base]\nepochs = 1e20\n",
        "a 10^6-point grid, --dry-run": "[axes]\n" + "\n".join(
            f"{f} = {list(range(1, 101))}" for f in ("epochs", "step_size", "seed")),
        "claims: unknown test": '[[claims]]\nid = "x"\nstatement = "s"\ntest = "anova"\n',
    }  # fmt: skip
    for label, text in bad_studies.items():
        path = tmp / f"study-{len(cases)}.toml"
        path.write_text(text)
        case(f"study file: {label}", ["study", "run", str(path), "--dry-run"], timeout=60)
    failing = tmp / "failing.toml"
    # AlexNet cannot take 32x32 inputs: every run fails when it starts.
    failing.write_text(
        STUDY.replace("lr = [0.05, 0.01]", 'model = ["alexnet"]').replace("batch_norm = true\n", "")
    )
    case("a study whose every run fails", ["study", "run", str(failing), "--db", str(tmp / "f.db")])
    case(
        "--set with an unknown field",
        ["study", "run", str(failing), "--dry-run", "--set", "colour=1"],
    )
    case("unknown preset", ["reproduce", "--preset", "nope", "--dry-run"])

    # Second pass (issue 33): the classes an independent audit found, with cases of our own.
    # Artifacts checked against the model they build.
    from squeezelab.compression.storage import write_compressed
    from squeezelab.models import get_model

    def sqzc(name: str, model: str = "squeezenet1_1", drop: str = "", **meta: object) -> Path:
        state = get_model(model, num_classes=10).state_dict()
        state.pop(drop, None)
        path = tmp / name
        write_compressed(path, state, {}, {"model": model, "num_classes": 10, "options": {},
                                           "image_size": 32, **meta})  # fmt: skip
        return path

    for label, path in (
        ("a .sqzc missing a tensor its header's model has",
         sqzc("drop.sqzc", drop="classifier.1.bias")),
        ("a .sqzc of 1.1's tensors whose header says 1.0",
         sqzc("liar.sqzc", model="squeezenet1_1")),
        ("a .sqzc whose options build 25 billion parameters",
         sqzc("huge.sqzc", model="squeezenet1_0", options={"base_e": 65536})),
        ("a .sqzc whose image_size is 10^6", sqzc("wide.sqzc", image_size=10**6)),
    ):  # fmt: skip
        if "liar" in path.name:
            from squeezelab.compression.storage import read_compressed

            st, mt = read_compressed(path)
            write_compressed(path, st, {}, {**mt, "model": "squeezenet1_0"})
        for fmt in ("int8", "onnx"):
            out = str(tmp / f"x.{fmt}")
            case(f"{label}: export {fmt}", ["export", str(path), "--format", fmt, "--out", out])
    other = tmp / "runs" / "other-variant"
    sh(["train", *flat, "--out", str(other)], env=env)
    from squeezelab.training.checkpoint import save_atomic as _save

    _save(get_model("squeezenet1_1", num_classes=10).state_dict(), other / "model.safetensors", {})
    case("a run folder holding 1.1's weights for a 1.0 run: evaluate", ["evaluate", str(other)])
    case("a run folder holding 1.1's weights: compress",
         ["compress", str(other), "--out", str(tmp / "o.sqzc")])  # fmt: skip
    # Writes that fail: a file-size limit stands in for a full disk; the old file must stay.
    export_to = tmp / "old-export.csv"
    export_to.write_text("an earlier export\n")
    code, err = sh_limited(["results", "export", "--db", str(good_db), "--out", str(export_to)],
                           env, limit=200)  # fmt: skip
    result = classify(code, err, True)
    if export_to.read_text() != "an earlier export\n":
        result = "data_lost"
    name = "results export onto a full disk over an earlier export"
    last = err.strip().splitlines()[-1:]
    cases.append({"case": name, "result": result, "exit": code, "message": last})
    # Data bounded before it is read, and nothing dropped silently.
    fifo = tmp / "fifo.tar.gz"
    os.mkfifo(fifo)
    train_on("a FIFO named like an archive", fifo, timeout=60)
    zero = tmp / "zero.zip"
    zero.symlink_to("/dev/zero")
    train_on("a link to /dev/zero named like a zip", zero, timeout=60)
    hollow = tar(tmp / "hollow.tar", good_entries())
    with tarfile.open(hollow, "a") as t:
        info = tarfile.TarInfo("yak")
        info.type = tarfile.DIRTYPE
        t.addfile(info)
    train_on("an empty class folder inside a tar", hollow)
    big = tmp / "big.zip"
    with zipfile.ZipFile(big, "w") as z:
        for i in range(3):
            z.writestr(f"c{i % 2}/{i}.png", png())
    train_on("a zip over the total cap (cap lowered to 100 bytes)", big,
             env={"SQUEEZELAB_MAX_SOURCE_BYTES": "100"})  # fmt: skip
    lone = tmp / "lone-best-of.toml"
    lone.write_text(STUDY + '\n[best_of]\nstudy = "nosuch"\ngroup_by = ["model"]\n'
                    'fields = ["lr"]\n')  # fmt: skip
    case("[best_of] naming a study the store lacks, no [[points]]",
         ["study", "run", str(lone), "--db", str(tmp / "lone.db"), "--dry-run"])  # fmt: skip
    renamed = folder(tmp / "renamed", {"x": [png()] * 6, "y": [png(value=200)] * 6})
    named = folder(tmp / "named", {"a": [png()] * 6, "b": [png(value=200)] * 6})
    learned = tmp / "runs" / "named"
    sh([*TRAIN, "--data", str(named), "--out", str(learned)], env=env)
    case("evaluate --data whose classes differ (same count)",
         ["evaluate", str(learned), "--data", str(renamed)])  # fmt: skip
    # Small ones.
    case("train --train-subset 1", [*TRAIN, "--data", "synthetic:100", "--train-subset", "1",
                                    "--out", str(tmp / "runs" / "one")])  # fmt: skip
    bad_schema = tmp / "schema.db"
    import shutil

    shutil.copy(good_db, bad_schema)
    with sqlite3.connect(bad_schema) as conn:
        conn.execute("UPDATE meta SET value='abc' WHERE key='schema_version'")
    case("a store whose schema_version is not a number: status",
         ["study", "status", "--db", str(bad_schema)])  # fmt: skip

    totals = Counter(c["result"] for c in cases)
    summary = {
        "tried": len(cases),
        "clear_error_or_correct": totals["clear"],
        "traceback": totals["traceback"],
        "silent_wrong": totals["silent_wrong"],
        "data_lost": totals["data_lost"],
        "hang": totals["hang"],
        "failures": [c for c in cases if c["result"] != "clear"],
        "cases": [c for c in cases if c["case"] != ".sqzc single-bit flip"],
        "bit_flips": dict(flips),
    }
    text = json.dumps(summary)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
