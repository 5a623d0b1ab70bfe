"""Render report sections as Markdown and as one self-contained HTML page.

The page is read at a laptop's width (1280 px): it opens with the question the runs answer,
then a table of contents; wide tables scroll inside their own box; text aligns left and
numbers right; each claim's details fold under its one-line verdict.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Any


def anchor(title: str) -> str:
    """The section's id in the page (its table-of-contents link)."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"


def file_stem(name: str) -> str:
    """A study's name as a file name: a part's (``study[model=x]``) or a research stage's
    (``research/stage``) holds characters that a path or a link would read otherwise."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "study"


def _anchors(sections: list[Any]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for s in sections:
        base = anchor(s.title)
        seen[base] = seen.get(base, 0) + 1
        out.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return out


def render_markdown(sections: list[Any], db: str | Path, question: str = "") -> str:
    lines = ["# squeezelab report", ""]
    if question:
        lines += [f"**{question}**", ""]
    lines += [f"Store: `{db}`", ""]  # Markdown viewers build their own outline
    for s in sections:
        lines += [f"## {s.title}", ""]
        for block in s.blocks:
            if block[0] == "p":
                lines += [block[1], ""]
            elif block[0] == "details":
                lines += [block[2], ""]
            elif block[0] == "table":
                t = block[1]
                lines += [f"**{t.title}**", "", t.to_markdown(), ""]
                if t.note:
                    lines += [f"_{t.note}_", ""]
            else:
                lines += [f"![{block[2]}]({block[1].name})", ""]
    return "\n".join(lines)


CSS = """
* { box-sizing: border-box }
body { font-family: system-ui, sans-serif; max-width: 1180px; margin: 1.5em auto;
       padding: 0 1.5em; color: #222; line-height: 1.45 }
p, li, figcaption, summary { max-width: 80ch; overflow-wrap: anywhere }
.question { font-size: 1.2em; max-width: none; border-left: 4px solid #4a7; padding-left: .8em }
nav { background: #f7f7f7; padding: .5em 1em; margin: 1em 0 }
nav ol { margin: .3em 0; columns: 2 }
.scroll { max-width: 100%; overflow-x: auto; margin: .5em 0 1.5em }
table { border-collapse: collapse; font-size: .88em }
td, th { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top }
th { background: #f3f3f3; position: sticky; top: 0 }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap }
td { max-width: 40em }
img { max-width: 100%; height: auto }
figure { margin: 1em 0 }
code { overflow-wrap: anywhere }
details { margin: .3em 0 }
summary { cursor: pointer }
details p { margin: .3em 0 .8em 1.2em }
.note { color: #555; font-style: italic }
"""


def _inline(text: str) -> str:
    text = html.escape(text)
    while text.count("**") >= 2:
        text = text.replace("**", "<b>", 1).replace("**", "</b>", 1)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def render_html(sections: list[Any], db: str | Path, question: str = "") -> str:
    anchors = _anchors(sections)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>squeezelab report</title><style>{CSS}</style></head><body>",
        "<h1>squeezelab report</h1>",
    ]
    if question:
        parts.append(f"<p class=question>{_inline(question)}</p>")
    parts.append(f"<p>Store: <code>{html.escape(str(db))}</code></p>")
    parts.append(
        "<nav><b>Contents</b><ol>"
        + "".join(
            f"<li><a href='#{a}'>{html.escape(s.title)}</a></li>" for s, a in zip(sections, anchors)
        )
        + "</ol></nav>"
    )
    for s, a in zip(sections, anchors):
        parts.append(f"<h2 id='{a}'>{html.escape(s.title)}</h2>")
        for block in s.blocks:
            if block[0] == "p":
                parts.append(f"<p>{_inline(block[1])}</p>")
            elif block[0] == "details":
                parts.append(
                    f"<details><summary>{_inline(block[1])}</summary>"
                    f"<p>{_inline(block[2])}</p></details>"
                )
            elif block[0] == "table":
                t = block[1]
                parts.append(f"<h3>{html.escape(t.title)}</h3>{t.to_html()}")
                if t.note:
                    parts.append(f"<p class='note'>{html.escape(t.note)}</p>")
            else:
                data = base64.b64encode(block[1].read_bytes()).decode()
                parts.append(
                    f"<figure><img src='data:image/png;base64,{data}' "
                    f"alt='{html.escape(block[2])}'>"
                    f"<figcaption>{html.escape(block[2])}</figcaption></figure>"
                )
    parts.append("</body></html>")
    return "\n".join(parts)
