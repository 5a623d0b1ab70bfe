"""Data: each source, the cache, splits, corrupt inputs, the batched augmentation."""

from __future__ import annotations

import io
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from squeezelab.data import (
    Augment,
    Batches,
    DataError,
    Preprocess,
    load_source,
    make_synthetic,
    random_crop_flip,
    split_source,
)

from .conftest import write_cifar_archive, write_jpeg_archive


def test_cifar_archive_and_extracted_folder(cifar_archive: Path, tmp_path: Path) -> None:
    src = load_source(str(cifar_archive))
    assert src.name == "cifar10"
    assert src.train.images.shape == (60, 32, 32, 3) and src.test.images.shape == (20, 32, 32, 3)
    assert src.train.classes[:2] == ["class0", "class1"]
    with tarfile.open(cifar_archive) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    folder = load_source(str(tmp_path / "x"))
    np.testing.assert_array_equal(folder.train.images, src.train.images)
    np.testing.assert_array_equal(folder.test.labels, src.test.labels)


def test_cifar100_archive(tmp_path: Path) -> None:
    import pickle

    rng = np.random.default_rng(0)
    path = tmp_path / "cifar-100-python.tar.gz"

    def part(n: int) -> bytes:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        return pickle.dumps(
            {b"data": data, b"fine_labels": list(range(n)), b"coarse_labels": [0] * n}
        )

    members = {"train": part(100), "test": part(100)}
    members["meta"] = pickle.dumps({b"fine_label_names": [f"c{i}".encode() for i in range(100)]})
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    src = load_source(str(path))
    assert src.name == "cifar100" and src.train.num_classes == 100
    assert src.train.classes[5] == "c5" and src.test.labels[7] == 7


def test_cifar_pixels_are_decoded_in_official_layout(tmp_path: Path) -> None:
    # The official rows are 1024 red, 1024 green, 1024 blue values, row-major.
    path = write_cifar_archive(tmp_path / "cifar-10-python.tar.gz")
    src = load_source(str(path))
    import pickle

    with tarfile.open(path) as tar:
        raw = pickle.loads(tar.extractfile("cifar-10-batches-py/data_batch_1").read())
    first = raw[b"data"][0]
    np.testing.assert_array_equal(src.train.images[0, :, :, 0].ravel(), first[:1024])
    np.testing.assert_array_equal(src.train.images[0, :, :, 2].ravel(), first[2048:])


def test_cifar_offline_without_copy_says_what_to_download(tmp_path: Path, monkeypatch) -> None:
    import torchvision.datasets.utils as tvu

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(tvu, "download_url", offline)
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz.*--data PATH"):
        load_source("cifar10", data_dir=tmp_path)


def test_malicious_pickle_is_refused(tmp_path: Path) -> None:
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            data = pickle.dumps({b"data": Evil()})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(DataError, match="corrupt CIFAR batch.*refusing"):
        load_source(str(path))


def test_image_folder_archive_labels_and_cache(jpeg_archive: Path, _isolated_cache: Path) -> None:
    src = load_source(str(jpeg_archive))
    assert src.train.classes == ["cat", "dog", "frog"]  # sorted, top folder stripped
    assert src.train.images.shape == (36, 32, 32, 3) and src.test is None
    assert sorted(np.bincount(src.train.labels)) == [12, 12, 12]
    cached = list(_isolated_cache.glob("images-*.npz"))
    assert len(cached) == 1
    again = load_source(str(jpeg_archive))
    np.testing.assert_array_equal(again.train.images, src.train.images)


def test_zip_and_plain_folder_give_the_same_images(jpeg_archive: Path, tmp_path: Path) -> None:
    with tarfile.open(jpeg_archive) as tar:
        tar.extractall(tmp_path / "folder", filter="data")
    zpath = tmp_path / "images.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for f in sorted((tmp_path / "folder").rglob("*.jpg")):
            # class folders at the top of the zip this time
            z.writestr(str(f.relative_to(tmp_path / "folder" / "train")), f.read_bytes())
    a = load_source(str(tmp_path / "folder")).train
    b = load_source(str(zpath)).train
    assert a.classes == b.classes
    np.testing.assert_array_equal(a.images, b.images)


def test_corrupt_image_is_named(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(root / c / "ok.png")
    (root / "b" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(DataError, match=r"corrupt image .*b/broken\.jpg"):
        load_source(str(root))


def test_corrupt_archive_is_named(tmp_path: Path) -> None:
    good = write_jpeg_archive(tmp_path / "good.tar.gz")
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match=r"corrupt archive .*bad\.tar\.gz"):
        load_source(str(bad))


def test_unknown_source_is_named() -> None:
    with pytest.raises(DataError, match="neither a known name"):
        load_source("imagenet-99")


def test_splits_are_seeded_and_disjoint() -> None:
    from squeezelab.data import Source

    pool = make_synthetic(200, seed=0)
    src = Source("s", pool)
    a = split_source(src, 0.1, 0.1, seed=3)
    b = split_source(src, 0.1, 0.1, seed=3)
    c = split_source(src, 0.1, 0.1, seed=4)
    assert (len(a.train), len(a.val), len(a.test)) == (160, 20, 20)
    np.testing.assert_array_equal(a.val.images, b.val.images)
    assert not np.array_equal(a.val.images, c.val.images)
    # Disjoint: every image appears once across the three parts.
    every = np.concatenate([a.train.images, a.val.images, a.test.images]).reshape(200, -1)
    assert len(np.unique(every, axis=0)) == 200
    sub = split_source(src, 0.1, 0.1, seed=3, train_subset=50)
    assert len(sub.train) == 50


def test_cifar_split_is_45k_5k_proportion(cifar_archive: Path) -> None:
    s = split_source(load_source(str(cifar_archive)), val_fraction=0.1)
    assert (len(s.train), len(s.val), len(s.test)) == (54, 6, 20)


def test_synthetic_is_deterministic_and_balanced() -> None:
    a, b = make_synthetic(100, seed=5), make_synthetic(100, seed=5)
    np.testing.assert_array_equal(a.images, b.images)
    assert np.bincount(a.labels).tolist() == [10] * 10


def test_random_crop_flip_matches_reference() -> None:
    x = torch.randint(0, 255, (6, 3, 8, 8), dtype=torch.uint8)
    out = random_crop_flip(x, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    dy = torch.randint(0, 9, (6,), generator=g)
    dx = torch.randint(0, 9, (6,), generator=g)
    flip = torch.rand(6, generator=g) < 0.5
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(6):
        ref = padded[i, :, dy[i] : dy[i] + 8, dx[i] : dx[i] + 8]
        if flip[i]:
            ref = ref.flip(-1)
        torch.testing.assert_close(out[i], ref)


def test_preprocess_resizes_and_normalizes() -> None:
    x = torch.full((2, 3, 32, 32), 124, dtype=torch.uint8)
    out = Preprocess(64)(x)
    assert out.shape == (2, 3, 64, 64) and out.dtype == torch.float32
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert abs(out[0, 0].mean().item() - (124 / 255 - 0.485) / 0.229) < 1e-4


# --- the readings of "randomly cropped, resized to 64x64, flipped before each use" ---------


def test_random_resized_crop_boxes_keep_torchvision_ranges() -> None:
    from squeezelab.data.pipeline import crop_boxes

    boxes = crop_boxes(4000, 32, 32, (0.08, 1.0), torch.Generator().manual_seed(0))
    top, left, h, w = boxes.T
    area = (h * w).float() / (32 * 32)
    assert area.min() >= 0.07 and area.max() <= 1.0  # rounding moves a box by under a pixel
    assert area.min() < 0.12 and (area > 0.9).any()  # the range is used, end to end
    ratio = w.float() / h.float()
    assert ratio.min() >= 0.5 and ratio.max() <= 2.0  # 3/4-4/3, widened by rounding small boxes
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= 32).all() and (left + w <= 32).all()
    narrow = crop_boxes(2000, 32, 32, (0.5, 1.0), torch.Generator().manual_seed(1))
    assert (narrow[:, 2] * narrow[:, 3]).float().div(1024).min() >= 0.46


def test_crop_and_resize_match_torchvision() -> None:
    """One grid_sample per batch gives what torchvision's resized_crop gives per image."""
    from torchvision.transforms.v2 import functional as TF

    from squeezelab.data.pipeline import resample

    x = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    boxes = torch.tensor([[0, 0, 32, 32], [5, 7, 16, 20], [10, 2, 9, 9]])
    flip = torch.tensor([False, True, False])
    out = resample(x, boxes, flip, 64)
    for i, (t, left, h, w) in enumerate(boxes.tolist()):
        ref = TF.resized_crop(x[i].float(), t, left, h, w, [64, 64], antialias=False)
        ref = ref.flip(-1) if flip[i] else ref
        torch.testing.assert_close(out[i], ref, atol=1e-3, rtol=0)


@pytest.mark.parametrize("kind", ["pad-crop", "random-resized-crop", "resize-then-crop"])
def test_each_reading_gives_model_sized_batches(kind: str) -> None:
    images = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(10)
    batches = Batches(images, labels, 4, Preprocess(64), torch.Generator().manual_seed(0),
                      augment=Augment(kind))  # fmt: skip
    shapes = [x.shape for x, _ in batches]
    assert shapes == [(4, 3, 64, 64), (4, 3, 64, 64), (2, 3, 64, 64)]
    first, second = (torch.cat([x for x, _ in batches]) for _ in range(2))
    assert not torch.equal(first, second)  # training draws new transforms every epoch


def test_evaluation_under_training_transforms_repeats_and_keeps_order() -> None:
    images = torch.randint(0, 256, (9, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(9)
    batches = Batches(images, labels, 4, Preprocess(64), augment=Augment("random-resized-crop"),
                      shuffle=False, reseed=0)  # fmt: skip
    a = [(x, y) for x, y in batches]
    b = [(x, y) for x, y in batches]
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))
    assert torch.equal(torch.cat([y for _, y in a]), labels)  # no shuffle: labels stay aligned
    plain = torch.cat([x for x, _ in Batches(images, labels, 4, Preprocess(64))])
    assert not torch.equal(torch.cat([x for x, _ in a]), plain)  # the transforms were applied


def test_resize_then_crop_crops_from_the_enlarged_image() -> None:
    # A constant image stays constant; a gradient image keeps its direction under no flip.
    x = torch.full((2, 3, 32, 32), 80, dtype=torch.uint8)
    out = Augment("resize-then-crop")(x, torch.Generator().manual_seed(0), 64)
    assert out.shape == (2, 3, 64, 64)
    torch.testing.assert_close(out, torch.full_like(out, 80.0))


def test_normalizations() -> None:
    x = torch.full((1, 3, 8, 8), 255, dtype=torch.uint8)
    assert torch.allclose(Preprocess(8, normalization="none")(x), torch.ones(1, 3, 8, 8))
    cifar = Preprocess(8, normalization="cifar10")(x)
    assert abs(cifar[0, 0, 0, 0].item() - (1 - 0.4914) / 0.2470) < 1e-4
    with pytest.raises(ValueError, match="normalization must be one of"):
        Preprocess(8, normalization="bogus")
    with pytest.raises(ValueError, match="augmentation must be one of"):
        Augment("random-crop")


def test_config_names_every_reading_the_pipeline_implements() -> None:
    from squeezelab.data import pipeline
    from squeezelab.training import config

    assert config.AUGMENTATIONS == pipeline.AUGMENTATIONS
    assert tuple(pipeline.NORMALIZATIONS) == config.NORMALIZATIONS


def test_a_folder_holding_only_an_archive_names_the_archive(tmp_path: Path) -> None:
    from squeezelab.data import check_source

    (tmp_path / "README.md").write_text("the images are in train.tar.gz")
    (tmp_path / "train.tar.gz").write_bytes(b"")
    with pytest.raises(DataError, match=r"holds no images .*train\.tar\.gz: pass that file"):
        check_source(str(tmp_path))


# --- bad inputs: every one a clear DataError naming the file, never a wrong data set --------


def _png(path: Path, size: tuple[int, int], value: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)


def test_mixed_sizes_resize_to_the_most_common_not_the_smallest(tmp_path: Path) -> None:
    for c in ("a", "b"):
        for i in range(4):
            _png(tmp_path / "d" / c / f"{i}.png", (16, 16))
    _png(tmp_path / "d" / "a" / "tiny.png", (1, 1))
    with pytest.warns(UserWarning, match="1 of 9 resized .* to 16x16"):
        src = load_source(str(tmp_path / "d"), data_dir=tmp_path / "cache")
    assert src.train.images.shape[1:] == (16, 16, 3)


def test_empty_and_single_class_folders_are_errors(tmp_path: Path) -> None:
    _png(tmp_path / "d" / "a" / "0.png", (8, 8))
    (tmp_path / "d" / "b").mkdir()
    with pytest.raises(DataError, match="class folder\\(s\\) without images: b"):
        load_source(str(tmp_path / "d"), data_dir=tmp_path / "cache")
    (tmp_path / "d" / "b").rmdir()
    with pytest.raises(DataError, match="needs at least two class folders"):
        load_source(str(tmp_path / "d"), data_dir=tmp_path / "cache")


def _tar(path: Path, entries: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _png_bytes(size: tuple[int, int] = (8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((*size, 3), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("entry", ["../evil/x.png", "/abs/x.png", "a/../../x.png"])
def test_archive_entries_outside_the_archive_are_refused(tmp_path: Path, entry: str) -> None:
    ok = {f"{c}/{i}.png": _png_bytes() for c in "ab" for i in range(2)}
    path = _tar(tmp_path / "t.tar", {**ok, entry: _png_bytes()})
    with pytest.raises(DataError, match="points outside the archive"):
        load_source(str(path), data_dir=tmp_path / "cache")


def test_oversize_entry_is_refused_before_reading(tmp_path: Path, monkeypatch) -> None:
    import squeezelab.data.sources as sources

    monkeypatch.setattr(sources, "MAX_IMAGE_BYTES", 1000)
    ok = {f"{c}/{i}.png": _png_bytes() for c in "ab" for i in range(2)}
    path = _tar(tmp_path / "t.tar", {**ok, "a/big.png": b"\0" * 5000})
    with pytest.raises(DataError, match="a/big.png is 5,000 bytes, over the 1,000-byte cap"):
        load_source(str(path), data_dir=tmp_path / "cache")


def _declared_png(width: int, height: int) -> bytes:
    """A PNG header declaring a huge image, with no pixel data (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_decompression_bomb_and_corrupt_zip_are_clear_errors(tmp_path: Path) -> None:
    ok = {f"{c}/{i}.png": _png_bytes() for c in "ab" for i in range(2)}
    path = _tar(tmp_path / "b.tar", {**ok, "a/bomb.png": _declared_png(30000, 30000)})
    with pytest.raises(DataError, match="too large to decode safely"):
        load_source(str(path), data_dir=tmp_path / "cache")
    zpath = tmp_path / "z.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in ok.items():
            z.writestr(name, data * 20)
    raw = bytearray(zpath.read_bytes())
    raw[60:90] = b"\xff" * 30  # inside the first entry's deflate stream
    zpath.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"z\.zip"):
        load_source(str(zpath), data_dir=tmp_path / "cache2")


@pytest.mark.parametrize(
    ("labels", "data", "message"),
    [
        ([57] * 12, None, "labels must lie in 0..9, found 57..57"),
        ([-3] * 12, None, "labels must lie in 0..9, found -3..-3"),
        (None, "nan", "pixels must be uint8, found float64"),
    ],
)
def test_bad_cifar_batches_are_named(tmp_path: Path, labels, data, message: str) -> None:
    path = write_cifar_archive(tmp_path / "cifar-10-python.tar.gz")
    members = {}
    with tarfile.open(path) as tar:
        for m in tar:
            members[m.name] = tar.extractfile(m).read()
    batch = pickle.loads(members["cifar-10-batches-py/data_batch_1"])
    if labels is not None:
        batch[b"labels"] = labels
    if data == "nan":
        batch[b"data"] = np.full((12, 3072), np.nan)
    members["cifar-10-batches-py/data_batch_1"] = pickle.dumps(batch)
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    with pytest.raises(DataError, match=message):
        load_source(str(path), data_dir=tmp_path / "cache")


# --- bounds before any read (issue 33) ---------------------------------------------------------


def test_a_fifo_or_a_device_named_like_an_archive_is_refused_at_once(tmp_path: Path) -> None:
    import os

    from squeezelab.data import load_source
    from squeezelab.data.images import DataError

    fifo = tmp_path / "data.tar.gz"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="is a FIFO"):
        load_source(str(fifo), tmp_path / "cache")
    zero = tmp_path / "zero.zip"
    zero.symlink_to("/dev/zero")
    with pytest.raises(DataError, match="is a device"):
        load_source(str(zero), tmp_path / "cache")


def test_a_source_is_bounded_in_total_before_any_image_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from squeezelab.data import load_source, sources
    from squeezelab.data.images import DataError

    archive = write_jpeg_archive(tmp_path / "d.tar.gz")
    monkeypatch.setattr(sources, "MAX_SOURCE_BYTES", 10_000)  # every image is under its cap
    with pytest.raises(DataError, match=r"declares [\d,]+ bytes of images in 36 files, over"):
        load_source(str(archive), tmp_path / "cache")
    seen: list[str] = []
    monkeypatch.setattr(sources, "_decode", lambda data, where: seen.append(where))
    with pytest.raises(DataError):
        load_source(str(archive), tmp_path / "cache2")
    assert seen == []  # refused from the listing: nothing decoded


def test_an_empty_class_folder_inside_an_archive_is_an_error(tmp_path: Path) -> None:
    from squeezelab.data import load_source
    from squeezelab.data.images import DataError

    source = write_jpeg_archive(tmp_path / "d.tar.gz")
    archive = tmp_path / "d.tar"
    with tarfile.open(source) as src, tarfile.open(archive, "w") as tar:
        for m in src:
            tar.addfile(m, src.extractfile(m))
        info = tarfile.TarInfo("train/yak")  # a class folder holding no image
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    with pytest.raises(DataError, match="class folder.s. without images: yak"):
        load_source(str(archive), tmp_path / "cache")


def test_cifar_reads_only_its_own_members_and_bounds_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from squeezelab.data import load_source, sources
    from squeezelab.data.images import DataError

    path = tmp_path / "cifar-10-python.tar"
    write_cifar_archive(tmp_path / "c.tar.gz")
    with tarfile.open(tmp_path / "c.tar.gz") as src, tarfile.open(path, "w") as out:
        for m in src:
            out.addfile(m, src.extractfile(m))
        extra = tarfile.TarInfo("cifar-10-batches-py/readme.bin")
        extra.size = 3_000_000
        out.addfile(extra, io.BytesIO(bytes(extra.size)))
    monkeypatch.setattr(sources, "MAX_CIFAR_MEMBER_BYTES", 2_000_000)
    assert len(load_source(str(path), tmp_path / "cache").train) == 60  # the extra: never read
    monkeypatch.setattr(sources, "MAX_CIFAR_MEMBER_BYTES", 1_000)
    with pytest.raises(DataError, match=r"data_batch_1 is [\d,]+ bytes: an official CIFAR"):
        load_source(str(path), tmp_path / "cache")
