"""One-command reproduction: the study's five objectives in order, then the report.

``compare`` takes its points from the ``grid`` just run (or, in the ``paper`` preset, the
study's own Table 3 points); interrupting and re-running continues where it stopped
(finished runs are skipped, interrupted ones resume). ``--dry-run`` prints the plan.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .studies.presets import load_preset, preset_layers, reference_protocols
from .studies.spec import StudySpec, load_study

OBJECTIVES = ("grid", "compare", "macro", "batchnorm", "transfer")
FAITHFUL = "paper"  # the preset that replicates the study as it ran


def resolve(
    preset: str, data: str | None = None, overrides: dict[str, Any] | None = None
) -> list[StudySpec]:
    """The objectives' studies with the preset, ``--data`` and ``--set`` applied, in order."""
    settings = load_preset(preset)
    top = dict(overrides or {})
    if data is not None and "data" not in top:
        top = {"data": data, **top}  # --set data=... is more specific than --data
    specs = []
    for name in OBJECTIVES:
        layers = [*preset_layers(name, settings), ("--data / --set", top)]
        if not any("data" in values for _, values in layers):
            layers.insert(0, ("default data", {"data": "synthetic"}))
        spec = load_study(name, layers, settings.get("protocol", {}))
        if spec.stop_stalled_after and preset == FAITHFUL:
            raise ConfigError(
                f"preset {preset}, study {name}: stop_stalled_after is refused: the faithful "
                "preset trains a run that stalls to its last epoch, as the study counted it"
            )
        specs.append(spec)
    return specs


def as_run(spec: StudySpec) -> str:
    """The study's description with the settings in force (a preset may shorten it)."""
    runs = spec.expand()
    epochs = "/".join(str(e) for e in sorted({r.epochs for r in runs}))
    images = sorted({r.train_subset for r in runs if r.train_subset})
    return (
        f"{spec.description} [as run: {len(runs)} runs, {epochs} epochs, "
        f"{len(spec.seeds)} seed(s), data {runs[0].data}"
        + (f", {images[0]:,} training images" if images else "")
        + "]"
    )


def plan_json(preset: str, specs: list[StudySpec]) -> dict[str, Any]:
    """The reproduction's plan: every run's resolved config, counts and epochs per study."""
    studies = {}
    for spec in specs:
        runs = spec.expand()
        note = ""
        if spec.best_of is not None:
            note = (
                f"points: the best of {spec.best_of.study!r} per "
                f"{', '.join(spec.best_of.group_by)} on validation accuracy once it has run; "
                "listed here: the study file's [[points]]"
            )
        if any(r.init == "imagenet" for r in runs):
            note += (
                "; init=imagenet: torchvision's weights when reachable, else a source pretrained "
                f"on {(spec.pretrain or {}).get('data')} first"
            ).lstrip("; ")
        studies[spec.name] = {
            "runs": len(runs),
            "epochs": sum(r.epochs for r in runs),
            "seeds": list(spec.seeds),
            "claims": [c.id for c in spec.claims],
            "note": note,
            "configs": [r.to_dict() for r in runs],
        }
    return {
        "preset": preset,
        "protocol": specs[0].protocol if specs else {},
        "total_runs": sum(s["runs"] for s in studies.values()),
        "total_epochs": sum(s["epochs"] for s in studies.values()),
        "studies": studies,
    }


def reproduce(
    data: str | None,
    out: str | Path,
    preset: str = "quick",
    overrides: dict[str, Any] | None = None,
    **execution: Any,
) -> dict[str, Any]:
    """Run the five objectives into ``OUT/squeezelab.db`` and write ``OUT/report``;
    ``execution`` goes to :func:`squeezelab.studies.run_study` (executor, workers, ...)."""
    from .analysis import build_report
    from .studies import run_study

    out = Path(out)
    db = out / "squeezelab.db"
    t0 = time.perf_counter()
    failed = 0
    for spec in resolve(preset, data, overrides):
        print(f"== {spec.name}: {as_run(spec)}", file=sys.stderr, flush=True)
        failed += run_study(spec, db, **execution).get("failed", 0)
    summary = build_report(db, out / "report", reference_protocols())
    summary["failed_runs"] = failed
    summary["wall_s"] = time.perf_counter() - t0
    summary["db"] = str(db)
    return summary
