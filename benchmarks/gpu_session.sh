#!/usr/bin/env bash
# One short, prepared script for a session lent a GPU (see ../.library/device/README.md):
# the GPU tests, the study-throughput benchmark on the GPU, and the quick preset packed
# 8 runs per GPU, timed. Everything it measures lands in $OUT (default: gpu-session/).
# Issue 14's comparison on a GPU has its own script: benchmarks/gpu_modern.sh.
set -euo pipefail
OUT="${OUT:-gpu-session}"
mkdir -p "$OUT"
# The device has no package index; its image holds torch, torchvision, scipy, matplotlib,
# safetensors, tqdm and pytest: install squeezelab alone (its console script), nothing fetched.
python3 -m pip install -q --no-deps --no-build-isolation -e .
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.csv"
python3 -m pytest -q -m gpu tests/ 2>&1 | tail -5 | tee "$OUT/gpu-tests.txt"
python3 benchmarks/study_throughput.py --device cuda | tee "$OUT/study_throughput.json"
TIMER=(); [ -x /usr/bin/time ] && TIMER=(/usr/bin/time -v)
"${TIMER[@]}" squeezelab reproduce --preset quick --runs-per-device 8 --out "$OUT/quick" \
    --json 2> "$OUT/quick-time.txt" | tail -1 > "$OUT/quick-summary.json"
grep -E "Elapsed|Maximum resident" "$OUT/quick-time.txt" || true
