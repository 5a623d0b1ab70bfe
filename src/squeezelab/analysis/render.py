"""Render report sections as Markdown and as one self-contained HTML page."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any


def render_markdown(sections: list[Any], db: str | Path) -> str:
    lines = ["# squeezelab report", "", f"Store: `{db}`", ""]
    for s in sections:
        lines += [f"## {s.title}", ""]
        for block in s.blocks:
            if block[0] == "p":
                lines += [block[1], ""]
            elif block[0] == "table":
                t = block[1]
                lines += [f"**{t.title}**", "", t.to_markdown(), ""]
                if t.note:
                    lines += [f"_{t.note}_", ""]
            else:
                lines += [f"![{block[2]}]({block[1].name})", ""]
    return "\n".join(lines)


CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222 }
table { border-collapse: collapse; margin: .5em 0 1.5em; font-size: .9em }
td, th { border: 1px solid #ccc; padding: .25em .6em; text-align: right }
th { background: #f3f3f3 }
td:first-child { text-align: left }
img { max-width: 100% }
.note { color: #555; font-style: italic }
"""


def render_html(sections: list[Any], db: str | Path) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>squeezelab report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>squeezelab report</h1>",
        f"<p>Store: <code>{html.escape(str(db))}</code></p>",
    ]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        for block in s.blocks:
            if block[0] == "p":
                text = html.escape(block[1])
                while "**" in text:
                    text = text.replace("**", "<b>", 1).replace("**", "</b>", 1)
                parts.append(f"<p>{text}</p>")
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
