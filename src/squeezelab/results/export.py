"""Export the store as one tidy table: CSV, JSON lines or Parquet."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

from ..fileio import write_text, write_with
from .store import Store


def tidy_rows(store: Store, per_epoch: bool = False) -> list[dict[str, Any]]:
    """One row per (study, run), or per (study, run, epoch) with ``per_epoch``."""
    records = store.runs(role=None)
    if not per_epoch:
        return [r.flat() for r in records]
    out = []
    for r in records:
        row = r.flat()
        for m in r.history:
            out.append({**row, **{f"epoch_{k}" if k in row else k: v for k, v in m.items()}})
    return out


def export(db: str | Path, fmt: str, out: str | Path | None, per_epoch: bool = False) -> None:
    """Write the tidy table of ``db`` in ``fmt`` to ``out`` (stdout when None)."""
    with Store(db, readonly=True) as store:  # a missing store, a directory, junk: named
        rows = tidy_rows(store, per_epoch)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    if fmt == "parquet":
        if out is None:
            raise ValueError("parquet needs --out FILE")
        # A missing package raises ModuleNotFoundError naming it; the CLI names the extra.
        import pandas as pd
        import pyarrow  # noqa: F401

        frame = pd.DataFrame(rows, columns=columns)
        write_with(out, lambda tmp: frame.to_parquet(tmp, index=False))
        return
    if fmt not in ("csv", "json"):
        raise ValueError(f"format must be csv, parquet or json, got {fmt!r}")
    buf = io.StringIO(newline="")
    if fmt == "csv":
        writer = csv.DictWriter(buf, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    else:
        for row in rows:
            buf.write(json.dumps(row) + "\n")
    if out:
        write_text(out, buf.getvalue())  # atomic: a failed export leaves the old file whole
    else:
        sys.stdout.write(buf.getvalue())
