"""What the live view costs a study: the page's render time on a large store, and a small
real study timed with and without ``--live`` (alternating, so drift hits both alike).

Prints one JSON object: the render's median seconds for a store holding the grid study's 108
runs (each with a 10-epoch history) and the share of one core it takes at the default period,
then each arm's wall times and the difference of medians against the spread within arms.

Usage: python benchmarks/live_overhead.py [--reps 3] [--every 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from squeezelab.results import Store
from squeezelab.studies import load_study
from squeezelab.studies.live import render

STUDY = """
seeds = [0, 1]
[base]
data = "synthetic:600"
image_size = 32
epochs = 3
[axes]
batch_norm = [false, true]
lr = [0.01, 0.02]
"""


def render_cost(folder: Path, every: float) -> dict[str, float]:
    db = folder / "grid.db"
    spec = load_study("grid")
    runs = spec.expand()
    with Store(db) as store:
        store.add_study(
            spec.name, {"name": spec.name}, [(c.key(), c.to_dict(), "run") for c in runs]
        )
        for i, c in enumerate(runs):
            acc = 20.0 + (i % 50)
            history = [{"epoch": e, "val_acc": acc * e / 10, "epoch_s": 1.0} for e in range(1, 11)]
            store.finish_run(c.key(), {"val_acc": acc, "test_acc": acc, "epochs": 10,
                                       "diverged": False, "train_s": 10.0}, history)  # fmt: skip
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        render(db, every=every)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    return {"runs": len(runs), "render_s": round(median, 4), "core_share": round(median / every, 4)}


def study_times(folder: Path, reps: int) -> dict[str, list[float]]:
    (folder / "tiny.toml").write_text(STUDY)
    arms: dict[str, list[float]] = {"off": [], "on": []}

    def once(db: Path, live: Path | None) -> float:
        cmd = [sys.executable, "-m", "squeezelab", "study", "run", str(folder / "tiny.toml"),
               "--db", str(db), *(["--live", str(live)] if live else [])]  # fmt: skip
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        return round(time.perf_counter() - t0, 2)

    once(folder / "warm.db", None)  # the first run pays for cold caches: not counted
    for rep in range(reps):
        for arm in ("off", "on") if rep % 2 == 0 else ("on", "off"):
            live = folder / f"{arm}{rep}.html" if arm == "on" else None
            arms[arm].append(once(folder / f"{arm}{rep}.db", live))
    return arms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--every", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cost = render_cost(folder, args.every)
        arms = study_times(folder, args.reps)
    off, on = statistics.median(arms["off"]), statistics.median(arms["on"])
    spread = max(max(a) - min(a) for a in arms.values())
    print(json.dumps({
        "render": cost,
        "study_s": arms,
        "median_off_s": off,
        "median_on_s": on,
        "difference_s": round(on - off, 2),
        "spread_within_arms_s": round(spread, 2),
        "within_noise": abs(on - off) <= spread,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
