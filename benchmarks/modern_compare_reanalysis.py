"""modern-compare's claims re-decided from its recorded per-seed test accuracies.

The store that trained them (30 epochs x 5 seeds per model, on the CIFAR-10 JPEG set's 5,000
test images) was lost with its machine; the README's modern-compare table keeps each seed's
test accuracy. This rebuilds those runs as records (test accuracy only: the claims read
nothing else) and decides the study's declared claims with the report's code, printing one
JSON line per claim and rule.

Usage: python benchmarks/modern_compare_reanalysis.py
"""

from __future__ import annotations

import json

from squeezelab.analysis.evaluate import evaluate_claims
from squeezelab.results import RunRecord
from squeezelab.studies import StudySpec, load_study

ACCURACIES = {  # (model, batch_norm) -> test accuracy of seeds 0..4 (the README's table)
    ("squeezenet1_0", True): [85.28, 84.98, 85.00, 85.12, 85.40],
    ("squeezenet1_0", False): [80.34, 50.02, 81.48, 69.42, 67.48],
    ("squeezenet1_1", False): [77.92, 77.84, 78.82, 57.44, 75.66],
    ("alexnet", False): [80.46, 80.52, 80.44, 80.34, 80.32],
}


def recorded_runs() -> tuple[StudySpec, list[RunRecord]]:
    """modern-compare as declared, its runs rebuilt from :data:`ACCURACIES`."""
    spec = load_study("modern-compare")
    runs = []
    for cfg in spec.expand():
        acc = ACCURACIES[(cfg.model, cfg.batch_norm)][cfg.seed]
        runs.append(
            RunRecord.of(
                cfg.key(),
                cfg.to_dict(),
                "done",
                test_acc=acc,
                val_acc=acc,
                provenance={"test_images": 5000, "val_images": 5000, "num_classes": 10},
            )
        )
    return spec, runs


def main() -> None:
    spec, runs = recorded_runs()
    results = evaluate_claims([(c, runs, [], "") for c in spec.claims])
    for r in results:
        d = r.to_dict()
        print(
            json.dumps(
                {
                    k: d[k]
                    for k in (
                        "id",
                        "rule",
                        "n",
                        "estimate",
                        "ci_low",
                        "ci_high",
                        "confidence",
                        "p_holm",
                        "verdict",
                        "qualifier",
                        "reason",
                        "advice",
                        "boot_low",
                        "boot_high",
                    )
                }
            )
        )


if __name__ == "__main__":
    main()
