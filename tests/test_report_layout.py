"""The report as a reader sees it: laid out by headless Chromium at 1280 px (slow marker).

A store of built-in studies with made-up accuracies gives the report its widest tables
(the grid's 36 rows, the forensic study's readings) and its figures; Chromium lays the page
out and a script measures it. Chromium is found on the PATH (``chromium`` or
``google-chrome``; ``.ci/run`` installs it); without it the test is skipped and says why.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from squeezelab.analysis import build_report, figures

from .conftest import store_builtin

WIDTH = 1280
MEASURE = """
<script>
window.addEventListener('load', () => {
  const width = window.innerWidth;
  const inScroll = el => el.closest('.scroll') !== null;
  const wide = [];
  for (const el of document.body.querySelectorAll('*')) {
    if (inScroll(el) && !el.classList.contains('scroll')) continue;
    const box = el.getBoundingClientRect();
    if (box.right > width + 1) wide.push(el.tagName + ':' + Math.round(box.right));
  }
  const align = sel => [...document.querySelectorAll(sel)].slice(0, 200)
    .map(el => getComputedStyle(el).textAlign);
  const out = {
    width: width,
    scrollWidth: document.documentElement.scrollWidth,
    wide: wide.slice(0, 20),
    h2: document.querySelectorAll('h2').length,
    toc: document.querySelectorAll('nav li a').length,
    question: (document.querySelector('.question') || {}).textContent || '',
    details: document.querySelectorAll('details').length,
    scrolls: document.querySelectorAll('.scroll').length,
    tables: document.querySelectorAll('table').length,
    textAlign: align('td:not(.num)'),
    numAlign: align('td.num'),
    images: [...document.images].map(i => [i.getBoundingClientRect().width, i.naturalWidth]),
  };
  const pre = document.createElement('pre');
  pre.id = 'layout-check';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def _chromium() -> str | None:
    return next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p),
        None,
    )


def _accuracy(c: Any) -> float:
    """Made-up but varied accuracies: every table and figure has something to show."""
    return 30.0 + 40.0 * c.lr + 5.0 * c.momentum + 3.0 * c.seed + (10.0 if c.batch_norm else 0.0)


def _title_fits(fig: Any) -> list[str]:
    """The titles of a figure that run past its edges (before saving crops or grows it)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = fig.bbox
    texts = [ax.title for ax in fig.axes] + list(fig.texts)
    suptitle = getattr(fig, "_suptitle", None)
    if suptitle is not None:
        texts.append(suptitle)
    cut = []
    for t in texts:
        if not t.get_text():
            continue
        box = t.get_window_extent(renderer)
        if box.x0 < frame.x0 - 1 or box.x1 > frame.x1 + 1 or box.y1 > frame.y1 + 1:
            cut.append(t.get_text())
    return cut


@pytest.mark.slow
def test_report_reads_at_1280_px(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium on the PATH (.ci/run installs it: apt-get install chromium)")
    db = tmp_path / "s.db"
    for study in ("grid", "macro", "forensic"):
        store_builtin(db, study, _accuracy)
    cut: list[str] = []
    save = figures._save

    def checked_save(fig: Any, path: Path) -> None:
        fig.tight_layout()
        cut.extend(f"{path.name}: {t!r}" for t in _title_fits(fig))
        save(fig, path)

    monkeypatch.setattr(figures, "_save", checked_save)
    out = build_report(db, tmp_path / "r")
    assert out["figures"], "the report drew no figure to check"
    assert cut == [], f"figure titles cut at the figure's edge: {cut}"

    page = tmp_path / "r" / "report.html"
    measured = tmp_path / "measured.html"
    measured.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    dom = subprocess.run(
        [
            browser,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--window-size={WIDTH},900",
            "--virtual-time-budget=10000",
            "--dump-dom",
            measured.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    ).stdout
    found = re.search(r'<pre id="layout-check">(.*?)</pre>', dom, re.S)
    assert found, f"the measuring script did not run: {dom[-500:]}"
    m = json.loads(html.unescape(found.group(1)))
    print(json.dumps({k: v for k, v in m.items() if "Align" not in k}))
    assert m["width"] == WIDTH
    assert m["scrollWidth"] <= WIDTH, f"the page is {m['scrollWidth']} px wide"
    assert m["wide"] == [], f"elements past the page's right edge: {m['wide']}"
    assert m["question"].startswith("The question:")
    assert m["toc"] == m["h2"] > 5  # every section is in the table of contents
    assert m["scrolls"] == m["tables"]  # each table scrolls inside its own box
    assert m["details"] >= 6  # a claim per forensic reading at least, each folded
    assert set(m["textAlign"]) <= {"left", "start"} and set(m["numAlign"]) == {"right"}
    assert all(shown <= WIDTH for shown, _natural in m["images"])
