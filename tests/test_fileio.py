"""Atomic writes: a failed write (a full disk, a size limit) names the path and the cause in one
line, leaves the previous file whole and no temporary file behind."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from squeezelab.analysis import build_report
from squeezelab.fileio import WriteError, write_text, write_with
from squeezelab.results import Store
from squeezelab.training import RunConfig


def _limit_file_size(limit: int):  # type: ignore[no-untyped-def]
    """A preexec function: files this process writes may not grow past ``limit`` bytes (the
    kernel then fails the write with EFBIG, as a full disk fails it with ENOSPC)."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_failed_write_keeps_the_old_file_and_says_one_line(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("previous\n")
    code = (
        "import sys\nfrom squeezelab.fileio import WriteError, write_text\n"
        f"try:\n    write_text({str(target)!r}, 'x' * 200_000)\n"
        "except WriteError as err:\n    print(err)\n    sys.exit(2)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          preexec_fn=_limit_file_size(50_000), timeout=120)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout.strip() == f"could not write {target}: File too large"
    assert target.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]  # no temporary file


def test_a_failing_library_writer_leaves_the_previous_export_whole(tmp_path: Path) -> None:
    """A failed export at the path of an earlier one used to truncate it (data lost)."""
    target = tmp_path / "model.int8.pt"
    target.write_bytes(b"an earlier export")

    def half_then_full_disk(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(WriteError, match=r"could not write .*model.int8.pt: No space left"):
        write_with(target, half_then_full_disk)
    assert target.read_bytes() == b"an earlier export"
    assert [p.name for p in tmp_path.iterdir()] == ["model.int8.pt"]
    write_text(target, "new")  # and a write that works replaces it
    assert target.read_text() == "new"


def test_results_export_on_a_full_disk_is_one_line_and_keeps_the_old_table(
    tmp_path: Path,
) -> None:
    db = tmp_path / "s.db"
    with Store(db) as store:
        for seed in range(40):
            cfg = RunConfig(seed=seed)
            store.add_study("s", {"name": "s"}, [(cfg.key(), cfg.to_dict(), "run")])
            store.finish_run(cfg.key(), {"val_acc": 50.0, "test_acc": 50.0}, [], {})
    out = tmp_path / "table.csv"
    out.write_text("old,table\n")
    proc = subprocess.run(
        ["squeezelab", "results", "export", "--db", str(db), "--out", str(out)],
        capture_output=True, text=True, preexec_fn=_limit_file_size(2_000), timeout=300,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith(f"could not write {out}: File too large")
    assert "Traceback" not in proc.stderr
    assert out.read_text() == "old,table\n"


def test_a_report_cut_short_leaves_no_older_complete_looking_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "r.db"
    with Store(db) as store:
        cfg = RunConfig()
        store.add_study("s", {"name": "s"}, [(cfg.key(), cfg.to_dict(), "run")])
        store.finish_run(cfg.key(), {"val_acc": 50.0, "test_acc": 50.0, "epochs": 1},
                         [{"epoch": 1, "val_acc": 50.0}], {"num_classes": 10})  # fmt: skip
    out = tmp_path / "report"
    build_report(db, out)
    assert (out / "report.html").exists()
    from squeezelab.analysis.report import builder

    def killed(*args: object) -> str:
        raise KeyboardInterrupt  # the user's Ctrl-C while the page is rendered

    monkeypatch.setattr(builder, "render_html", killed)
    with pytest.raises(KeyboardInterrupt):
        build_report(db, out)
    assert not (out / "report.html").exists()  # not the old page beside the new tables
    assert not [p for p in out.iterdir() if ".tmp" in p.name]


def test_checkpoint_writes_go_through_the_atomic_writer(tmp_path: Path) -> None:
    from squeezelab.training.checkpoint import save_atomic

    path = tmp_path / "model.safetensors"
    save_atomic({"w": torch.ones(3)}, path, {"k": "v"})
    before = path.read_bytes()
    with pytest.raises(WriteError, match="could not write"):
        save_atomic({"w": torch.ones(3)}, tmp_path / "missing" / "model.safetensors", {})
    assert path.read_bytes() == before


# --- artifacts checked against the model they build (issue 33) --------------------------------


def _sqzc(path: Path, model: str = "squeezenet1_1", drop: str = "", **meta: object) -> Path:
    from squeezelab.compression.storage import write_compressed
    from squeezelab.models import get_model

    state = get_model(model, num_classes=10).state_dict()
    state.pop(drop, None)
    header = {"model": model, "num_classes": 10, "options": {}, "image_size": 32, **meta}
    write_compressed(path, state, {}, header)
    return path


def test_a_compressed_file_is_checked_against_the_model_its_header_names(tmp_path: Path) -> None:
    from squeezelab.compression import load_compressed
    from squeezelab.compression.storage import FormatError
    from squeezelab.errors import ConfigError
    from squeezelab.models import WeightsError

    assert load_compressed(_sqzc(tmp_path / "ok.sqzc")) is not None
    dropped = _sqzc(tmp_path / "dropped.sqzc", drop="classifier.1.bias")
    with pytest.raises(WeightsError, match=r"dropped.sqzc .*1 missing: classifier.1.bias"):
        load_compressed(dropped)
    # 1.1's tensors under a header that says 1.0: every mismatch named, not a traceback
    from squeezelab.compression.storage import read_compressed, write_compressed

    state, meta = read_compressed(_sqzc(tmp_path / "other.sqzc"))
    header_says_10 = tmp_path / "h.sqzc"
    write_compressed(header_says_10, state, {}, {**meta, "model": "squeezenet1_0"})
    with pytest.raises(WeightsError, match="mis-shaped"):
        load_compressed(header_says_10)
    # A header whose options would build a 25-billion-parameter model: refused unallocated.
    huge = _sqzc(tmp_path / "huge.sqzc", model="squeezenet1_0", options={"base_e": 65536})
    with pytest.raises(ConfigError, match=r"would have [\d,]+ parameters, over the 250,000,000"):
        load_compressed(huge)
    with pytest.raises(FormatError, match="image_size = 1000000 outside 1..4096"):
        read_compressed(_sqzc(tmp_path / "wide.sqzc", image_size=1_000_000))


def test_export_of_a_mismatched_file_is_one_line(tmp_path: Path) -> None:
    bad = _sqzc(tmp_path / "bad.sqzc", drop="features.0.weight")
    proc = subprocess.run(
        ["squeezelab", "export", str(bad), "--format", "int8", "--out", str(tmp_path / "m.pt")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "1 missing: features.0.weight" in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "m.pt").exists()


def test_a_store_on_a_full_disk_is_one_line_and_keeps_what_it_held(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with Store(db) as store:
        cfg = RunConfig()
        store.add_study("kept", {"name": "kept"}, [(cfg.key(), cfg.to_dict(), "run")])
    size = db.stat().st_size
    proc = subprocess.run(
        ["squeezelab", "study", "run", "grid", "--data", "synthetic:100", "--db", str(db)],
        capture_output=True, text=True, preexec_fn=_limit_file_size(size + 4096), timeout=300,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert f"could not write the store {db}" in proc.stderr.strip().splitlines()[-1]
    with Store(db) as store:
        assert store.studies() == ["kept"] and len(store.runs("kept")) == 1
