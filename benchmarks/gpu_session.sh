#!/usr/bin/env bash
# One short, prepared script for a session lent a GPU (see ../.library/device/README.md):
# the GPU tests, the study-throughput benchmark on the GPU, and the quick preset packed
# 8 runs per GPU, timed. Everything it measures lands in $OUT (default: gpu-session/), as at
# most 8 plain files one folder deep (what a lent machine sends back): gpu.csv, gpu-tests.txt,
# study_throughput.json, quick-summary.json, quick-time.txt, quick.tgz (the quick job's store,
# report and log) and session.log (each step's exit status and seconds).
#
# A step that fails does not stop the others, and each is capped (seconds, from the
# environment: TESTS_S, THROUGHPUT_S, QUICK_S) so the whole call ends inside one device call.
# Issue 14's comparison on a GPU has its own script: benchmarks/gpu_modern.sh.
set -uo pipefail
OUT="${OUT:-gpu-session}"
TESTS_S="${TESTS_S:-120}"
THROUGHPUT_S="${THROUGHPUT_S:-150}"
QUICK_S="${QUICK_S:-300}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
WORK="$(mktemp -d)"
export PYTHONUNBUFFERED=1
LOG="$OUT/session.log"
: > "$LOG"

step() {  # step NAME CAP_S COMMAND...: run it under a cap, log its exit status and seconds
    local name="$1" cap="$2" t0 rc
    shift 2
    t0=$(date +%s)
    timeout --signal=TERM --kill-after=20 "$cap" "$@"
    rc=$?
    echo "$name: exit $rc after $(($(date +%s) - t0)) s (cap $cap s)" | tee -a "$LOG"
}

# The device has no package index; its image holds torch, torchvision, scipy, matplotlib,
# safetensors, tqdm and pytest: install squeezelab alone (its console script), nothing fetched.
step install 120 python3 -m pip install -q --no-deps --no-build-isolation -e .
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$LOG"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.csv"
step gpu-tests "$TESTS_S" bash -c \
    "python3 -m pytest -q -m gpu -p no:cacheprovider tests/ > '$WORK/gpu-tests.txt' 2>&1"
tail -40 "$WORK/gpu-tests.txt" > "$OUT/gpu-tests.txt"
tail -5 "$OUT/gpu-tests.txt"
step study-throughput "$THROUGHPUT_S" bash -c \
    "python3 benchmarks/study_throughput.py --device cuda > '$OUT/study_throughput.json' 2> '$WORK/throughput.err'"
tail -20 "$WORK/throughput.err" >> "$LOG"
cat "$OUT/study_throughput.json"
TIMER=()
[ -x /usr/bin/time ] && TIMER=(/usr/bin/time -v)
step quick "$QUICK_S" bash -c \
    "${TIMER[*]} python3 -m squeezelab reproduce --preset quick --runs-per-device 8 --out '$WORK/quick' \
     --json 2> '$OUT/quick-time.txt' | tail -1 > '$OUT/quick-summary.json'"
grep -E "Elapsed|Maximum resident" "$OUT/quick-time.txt" || tail -20 "$OUT/quick-time.txt"
# The store, the report and the run logs (not the weights) as one archive.
if [ -d "$WORK/quick" ]; then
    (cd "$WORK/quick" && find . \( -name '*.db' -o -name '*.md' -o -name '*.html' -o -name '*.png' \
        -o -name '*.json' -o -name '*.log' \) -print0 | tar czf "$OUT/quick.tgz" --null -T -)
fi
cat "$LOG"
