"""The command line as a new user meets it: fast help, clear errors, progress, disk."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from squeezelab import cli
from squeezelab.results import Store

from .conftest import run_cli
from .test_studies import STUDY

# One seed, the lr axis only: two quick runs.
TINY = STUDY.replace("seeds = [0, 1]", "seeds = [0]").replace("momentum = [0.9, 0.5]\n", "")


def test_help_imports_no_torch_and_lists_every_command() -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "squeezelab", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}
    assert "torch" not in imported and "scipy" not in imported
    cli.build_parser([])  # registers every command
    for name in list(cli.COMMANDS):
        assert name in proc.stdout
    assert "squeezelab reproduce --out reproduction" in proc.stdout  # a user-facing start


@pytest.mark.parametrize(
    "args", [["study", "status"], ["results", "export"], ["results", "merge", "other.db"]]
)
def test_store_commands_answer_without_torch(tmp_path: Path, args: list[str]) -> None:
    """Reading or merging a store needs no torch (3 s to import on a slow CPU)."""
    db = tmp_path / "s.db"
    with Store(db) as store:
        store.add_study("s", {}, [("k", {"seed": 0}, "run")])
    if args[-1] == "other.db":
        args = [*args[:-1], str(db)]
        db = tmp_path / "merged.db"
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "squeezelab", *args, "--db", str(db)],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}
    assert "torch" not in imported, args


def test_every_flag_is_documented() -> None:
    cli.build_parser([])
    for name in list(cli.COMMANDS):
        parser = cli.build_parser([name])
        sub = next(a for a in parser._actions if a.dest == "command").choices[name]
        undocumented = [
            a.option_strings or a.dest
            for a in sub._actions
            if not a.help and a.dest not in ("help", "action")
        ]
        assert not undocumented, f"{name}: {undocumented}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "--db", "{tmp}/missing.db", "--out", "{tmp}/r"], "no store at"),
        (["results", "export", "--db", "{tmp}/missing.db"], "no store at"),
        (["study", "status", "--db", "{tmp}/missing.db"], "no store at"),
        (["train", "--data", "synthetic:50", "--device", "cuda", "--out", "{tmp}/r"], "no CUDA"),
        (["train", "--data", "synthetic:50", "--resume", "--out", "{tmp}/nope"], "holds no run"),
        (["train", "--data", "synthetic:50", "--lr", "-1", "--out", "{tmp}/r"], "lr must lie"),
        (["report", "--db", "{tmp}/text.db", "--out", "{tmp}/r"], "not a usable squeezelab store"),
        (["study", "status", "--db", "{tmp}/other.db"], "another program"),
        (["results", "export", "--db", "{tmp}"], "is a directory"),
        (["study", "run", "grid", "--set", "lrate=1", "--dry-run"], "unknown field 'lrate'"),
        (["reproduce", "--set", "epochs=0", "--dry-run"], "epochs must be >= 1"),
    ],
)
def test_user_errors_are_one_line_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    if "cuda" in args:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
    (tmp_path / "text.db").write_text("not a database, a text file of some length " * 40)
    other = sqlite3.connect(tmp_path / "other.db")
    other.execute("CREATE TABLE photos (id INTEGER)")
    other.close()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    proc = run_cli(*(a.format(tmp=tmp_path) for a in args), check=False)
    assert proc.returncode == 2, proc.stderr
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == before  # a refused store is left exactly as it was
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "missing.db").exists()  # reading never creates a store


def test_missing_extra_names_the_pip_install(monkeypatch, tmp_path: Path, capsys) -> None:
    run_cli("study", "run", _tiny(tmp_path), "--db", str(tmp_path / "s.db"))
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if the [export] extra were missing
    code = cli.main(["results", "export", "--db", str(tmp_path / "s.db"), "--format", "parquet",
                     "--out", str(tmp_path / "x.parquet")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'squeezelab[export]'" in err


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    proc = run_cli("report", "--db", str(tmp_path / "m.db"), "--debug", check=False)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "StoreError" in proc.stderr


def _tiny(tmp_path: Path, text: str = TINY) -> str:
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    return str(path)


def test_study_progress_lines_when_not_a_tty(tmp_path: Path) -> None:
    proc = run_cli("study", "run", _tiny(tmp_path), "--db", str(tmp_path / "s.db"))
    err = proc.stderr
    assert "[1/2] tiny lr=0.05 (elapsed 0m00s)" in err
    assert "[2/2] tiny lr=0.01 (elapsed" in err and "ETA" in err
    assert err.count("epoch 1/1:") == 2  # one line per epoch in a log
    # Retention: no resume checkpoint left; final weights only for the best cell.
    runs = tmp_path / "runs"
    assert not list(runs.glob("*/checkpoint.safetensors"))
    assert len(list(runs.glob("*/model.safetensors"))) == 1
    assert len(list(runs.glob("*/result.json"))) == 2


def test_keep_weights_keeps_every_model(tmp_path: Path) -> None:
    run_cli("study", "run", _tiny(tmp_path), "--db", str(tmp_path / "s.db"), "--keep-weights")
    assert len(list((tmp_path / "runs").glob("*/model.safetensors"))) == 2


def test_a_study_with_failed_runs_exits_nonzero(tmp_path: Path) -> None:
    text = TINY.replace("lr = [0.05, 0.01]", 'model = ["squeezenet1_0", "alexnet"]')
    text = text.replace("batch_norm = true\n", "")
    proc = run_cli("study", "run", _tiny(tmp_path, text), "--db", str(tmp_path / "s.db"),
                   check=False)  # fmt: skip
    assert proc.returncode == 1
    assert "1 run(s) of 'tiny' failed" in proc.stderr
    assert "done 1" in proc.stdout  # the other run finished


def test_a_reader_that_goes_away_stops_the_cli_quietly() -> None:
    """``squeezelab ... | head``: exit 141 (SIGPIPE's), no error line, no traceback."""
    proc = subprocess.Popen(
        ["squeezelab", "study", "run", "grid", "--dry-run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )
    assert proc.stdout is not None
    proc.stdout.close()  # as `head` does; the 108 runs' lines overflow Python's 8 KiB buffer
    assert proc.wait(timeout=60) == 141
    assert proc.stderr is not None and proc.stderr.read() == b""


def test_the_command_line_is_strict_and_suggests(tmp_path: Path) -> None:
    """No abbreviations; a mistyped option or value gets the closest one and the usage of the
    sub-command it was given to; every sub-command says what it does; helps show defaults."""
    short = run_cli("train", "--epoch", "1", "--out", str(tmp_path / "r"), check=False)
    assert short.returncode == 2 and not (tmp_path / "r").exists()
    assert short.stderr.strip().endswith(
        "unrecognized arguments: --epoch 1; did you mean --epochs?"
    )
    typo = run_cli("study", "run", "grid", "--onli", "lr=0.1", "--dry-run", check=False)
    assert typo.returncode == 2 and typo.stderr.startswith("usage: squeezelab study run")
    assert "did you mean --only?" in typo.stderr
    value = run_cli("train", "--scheduler", "stepp", "--out", str(tmp_path / "r"), check=False)
    assert "invalid choice: 'stepp'" in value.stderr and value.stderr.strip().endswith(
        "did you mean step?"
    )
    assert "list the built-in studies" in run_cli("study", "list", "--help").stdout
    assert "run (or continue) a study" in run_cli("study", "run", "--help").stdout
    assert "(default: 0.67)" in run_cli("compress", "--help").stdout


def test_study_list_shows_the_users_studies_then_the_research_log() -> None:
    out = run_cli("study", "list").stdout
    mine, _, research = out.partition("the recipe search behind the `modern` recipe")
    assert {"grid", "compare", "forensic", "modern-compare"} <= {
        line.split()[0] for line in mine.splitlines() if line
    }
    assert "modern-search" not in mine and "research/modern-search-8" in research


@pytest.mark.parametrize(("module", "extra"), sorted(cli.EXTRAS.items()))
def test_every_optional_dependency_is_named_in_its_error(module: str, extra: str) -> None:
    """Each extra's packages, found missing as Python says it or as a library words it
    (torch.onnx raised "Module onnx is not installed!" from inside its exporter)."""
    expected = f"this needs the optional package {module!r}: pip install 'squeezelab[{extra}]'"
    assert cli._user_error(ModuleNotFoundError(f"No module named {module!r}", name=module)) == (
        expected
    )
    wrapped = RuntimeError(f"Module {module} is not installed! Please install it.")
    assert cli._user_error(wrapped) == expected
    try:
        try:
            raise ModuleNotFoundError("gone", name=f"{module}.sub")
        except ModuleNotFoundError as inner:
            raise RuntimeError("export failed") from inner
    except RuntimeError as outer:
        assert cli._user_error(outer) == expected


def test_every_command_has_a_whole_sentence_for_its_summary() -> None:
    # the command list shows each handler's first docstring line: a sentence cut at a line
    # break ("... until no") read as a bug
    for name, (_, handler, _) in cli.COMMANDS.items():
        first = (handler.__doc__ or "").strip().splitlines()[0]
        assert first.endswith("."), f"{name}: {first!r}"
