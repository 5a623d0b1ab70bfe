"""The documentation site: its reference generated from the code, its tutorials run as written,
its pages rendered in a real browser.

The fast tests hold the generated reference to the code (every command, flag, run field,
study-file key and store table appears) and the README to its size. The slow ones build the
site with ``mkdocs build --strict``, run every command of every tutorial in a fresh directory
in page order (a block preceded by ``<!-- ci: skip: REASON -->`` is left out, and must say
why), and open every page in headless Chromium (Debian's, driven by Playwright: no browser
download) to check that it renders without console errors and that the home page reaches the
three answers a new user looks for in one click; the live page and the report get the same
console check. ``SQUEEZELAB_DOCS_SHOTS=docs/images`` makes
the tutorial test write the screenshots the pages use.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import http.server
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from squeezelab import declared
from squeezelab.analysis.sequential import SequentialDesign
from squeezelab.results import store
from squeezelab.studies import spec as study_spec
from squeezelab.training.config import field_names

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TUTORIALS = sorted(p.name for p in (DOCS / "tutorials").glob("*.md") if p.name != "index.md")
SKIP = re.compile(r"<!--\s*ci:\s*skip:\s*(?P<why>.+?)\s*-->")
FENCE = re.compile(r'^```(?P<lang>\w+)?(?:\s+title="(?P<title>[^"]+)")?\s*$')
# What each tutorial promises to leave behind, relative to its working directory.
PRODUCES = {
    "replicate.md": ["reproduction/report/report.html"],
    "own-study.md": ["my.db", "my-report/report.html", "my-runs.csv"],
    "compress.md": ["runs/sq/model.safetensors", "sq.sqzc", "sq-int8.pt", "sq.onnx"],
}


@functools.cache
def reference() -> ModuleType:
    """The MkDocs hook that generates the reference pages, imported as MkDocs does."""
    spec = importlib.util.spec_from_file_location("reference", DOCS / "_hooks" / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclasses.dataclass(frozen=True)
class Block:
    lang: str
    title: str | None
    text: str
    skip: str | None  # why CI leaves it out, if it does


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a page, in order, with their skip marks."""
    out, lines, i = [], page.read_text().splitlines(), 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        before = next((line for line in reversed(lines[:i]) if line.strip()), "")
        skip = SKIP.search(before)
        end = lines.index("```", i + 1)
        text = "\n".join(lines[i + 1 : end]) + "\n"
        out.append(Block(fence["lang"] or "", fence["title"], text, skip and skip["why"]))
        i = end + 1
    return out


# --- fast: the reference is the code's --------------------------------------------------------


def test_every_study_file_key_has_its_help() -> None:
    assert set(declared.CLAIM_KEY_HELP) == set(declared.ClaimSpec.__dataclass_fields__)
    assert set(declared.REPORT_KEY_HELP) == set(declared.ReportSpec.__dataclass_fields__)
    assert set(study_spec.BEST_OF_HELP) == set(study_spec.BestOf.__dataclass_fields__)
    sequential = set(SequentialDesign.__dataclass_fields__) - {"first"}  # the declared seeds
    assert set(study_spec.SEQUENTIAL_HELP) == sequential
    assert set(study_spec.SHAPES) | {"stop_stalled_after"} == set(study_spec.SECTIONS)


def _parsers(
    parser: argparse.ArgumentParser, path: str
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, f"{path} {name}")


def test_the_generated_reference_names_every_command_flag_field_and_key() -> None:
    from squeezelab.cli import build_parser

    pages = reference().pages()
    cli = pages["reference/cli.md"]
    for path, parser in _parsers(build_parser(), "squeezelab"):
        assert path == "squeezelab" or f"`{path}`" in cli, path
        for action in parser._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}" in cli, f"{path} {flag}"
    fields = pages["reference/run-fields.md"]
    assert all(f"`{name}`" in fields and f"--{name.replace('_', '-')}" in fields
               for name in field_names())  # fmt: skip
    keys = pages["reference/study-files.md"]
    for helps in (study_spec.SECTION_HELP, study_spec.BEST_OF_HELP, study_spec.SEQUENTIAL_HELP,
                  declared.CLAIM_KEY_HELP, declared.REPORT_KEY_HELP):  # fmt: skip
        assert all(f"`{k}`" in keys and " ".join(text.split()) in keys
                   for k, text in helps.items())  # fmt: skip
    schema = pages["reference/store.md"]
    for table in ("meta", "studies", "runs", "study_runs", "metrics", "looks"):
        assert f"CREATE TABLE IF NOT EXISTS {table} " in schema
    assert all(f"`{s}`" in schema for s in store.STATUSES)
    assert "`modern-compare`" in pages["reference/builtin-studies.md"]


def test_the_readme_is_short_and_starts_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    first = blocks(ROOT / "README.md")[0].text
    assert "squeezelab reproduce" in first and "python -m pytest" in first
    assert "../shared" not in readme  # examples name data a user has


def test_every_skipped_tutorial_block_says_why_and_every_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    generated = set(reference().pages())
    for page in DOCS.rglob("*.md"):
        rel = page.relative_to(DOCS).as_posix()
        assert rel in nav, f"{rel} is not in mkdocs.yml's nav"
    assert all(p in nav for p in generated)
    for name in TUTORIALS:
        run = [b for b in blocks(DOCS / "tutorials" / name) if b.lang == "bash"]
        assert run and all(b.skip is None or len(b.skip) > 10 for b in run), name
        assert "../shared" not in (DOCS / "tutorials" / name).read_text()


# --- slow: built, run and seen -----------------------------------------------------------------


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("SQUEEZELAB_DEBUG", None)
    return env


@pytest.mark.slow
@pytest.mark.parametrize("name", TUTORIALS)
def test_a_tutorial_runs_as_written(name: str, tmp_path: Path) -> None:
    ran = 0
    for block in blocks(DOCS / "tutorials" / name):
        if block.skip:
            continue
        if block.title:  # a file the reader saves
            (tmp_path / block.title).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / block.title).write_text(block.text)
        elif block.lang == "bash":
            command = ["bash", "-euo", "pipefail", "-c", block.text]
            proc = subprocess.run(command, cwd=tmp_path, env=_env(), capture_output=True,
                                  text=True, timeout=1800)  # fmt: skip
            assert proc.returncode == 0, f"{name}:\n{block.text}\n{proc.stderr[-3000:]}"
            ran += 1
    assert ran >= 3
    for path in PRODUCES[name]:
        assert (tmp_path / path).is_file(), f"{name} promised {path}"
    shots = os.environ.get("SQUEEZELAB_DOCS_SHOTS")
    if name == "own-study.md":
        page = tmp_path / "my-report" / "report.html"
        out = Path(shots) if shots else tmp_path
        shot = _screenshot(page.as_uri(), out / "own-study-report.png", height=1100)
        assert shot is None or shot.stat().st_size > 20_000


def _chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)


def _screenshot(url: str, out: Path, height: int = 900) -> Path | None:
    """A 1280 px wide screenshot of ``url`` (None without Chromium or Playwright)."""
    browser = _chromium()
    if browser is None or importlib.util.find_spec("playwright") is None:
        return None
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chrome = p.chromium.launch(executable_path=browser, args=["--no-sandbox"])
        page = chrome.new_page(viewport={"width": 1280, "height": height})
        page.goto(url)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))
        chrome.close()
    return out


def _watched_page(p: Any, browser: str) -> tuple[Any, Any, list[str]]:
    """A 1280 px page in Chromium, and the list its console errors and script errors go to."""
    chrome = p.chromium.launch(executable_path=browser, args=["--no-sandbox"])
    page = chrome.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return chrome, page, errors


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The site built with --strict and served over HTTP (as a reader's browser gets it)."""
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**_env(), "NO_MKDOCS_2_WARNING": "1"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # no line per request in the test log
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(out))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.mark.slow
def test_every_page_renders_without_console_errors(site: str, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium on the PATH (.ci/run installs it: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chrome, page, errors = _watched_page(p, browser)
        page.goto(site)
        links = page.eval_on_selector_all("nav.md-nav--primary a.md-nav__link[href]",
                                          "els => [...new Set(els.map(e => e.href))]")  # fmt: skip
        pages = sorted({link.split("#")[0] for link in links if link.startswith(site)})
        assert len(pages) >= 35, pages
        for url in pages:
            response = page.goto(url)
            assert response is not None and response.ok, url
            assert page.locator("h1").count() >= 1, url
        assert errors == [], errors
        # A new user's three questions, one click from the home page.
        for text, heading in (("tutorial: your own study", "Your own study, with claims"),
                              ("how verdicts are decided", "How verdicts are decided"),
                              ("run on a Ray cluster", "Run on a Ray cluster")):  # fmt: skip
            page.goto(site)
            page.get_by_role("link", name=text).first.click()
            assert page.locator("h1").first.inner_text().strip(" ¶\n") == heading
        page.goto(site)
        page.screenshot(path=str(tmp_path / "home.png"))
        chrome.close()
    assert (tmp_path / "home.png").stat().st_size > 20_000


@pytest.mark.slow
def test_the_live_page_and_the_report_render_without_console_errors(tmp_path: Path) -> None:
    """The two pages squeezelab writes for a browser, a study half done: no console errors,
    every run's curve drawn, and a screenshot each."""
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium on the PATH (.ci/run installs it: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    from .conftest import run_cli, store_builtin

    db = tmp_path / "s.db"
    store_builtin(db, "batchnorm", lambda c: None if c.lr > 0.03 else 30.0 + 100 * c.lr)
    live, report = tmp_path / "live.html", tmp_path / "r" / "report.html"
    run_cli("watch", "--db", str(db), "--out", str(live), "--once")
    run_cli("report", "--db", str(db), "--out", str(report.parent))
    with sync_playwright() as p:
        chrome, page, errors = _watched_page(p, browser)
        for html in (live, report):
            page.goto(html.as_uri())
            page.screenshot(path=str(html.with_suffix(".png")))
        page.goto(live.as_uri())
        finished = page.locator("svg").count()
        chrome.close()
    assert errors == [], errors
    assert finished >= 1 and "interim" in live.read_text()
    assert all(html.with_suffix(".png").stat().st_size > 20_000 for html in (live, report))
