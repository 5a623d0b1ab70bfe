#!/usr/bin/env bash
# Issue 14 on a lent GPU, in one call: the built-in `modern-compare` study (SqueezeNet 1.0,
# 1.0 + BN, 1.1 and AlexNet at their modern recipes, 30 epochs x 5 seeds), then the search's
# `research/modern-search-4` to `-8` (plain SqueezeNet 1.0's and 1.1's rates, 1.0 + BN's dropout and
# rate, AlexNet's weight decay and rate, at 30 epochs; each cell at the recipe's values is
# shared with modern-compare), on the shared JPEG set, one store, then its report. STUDIES
# overrides the list. Everything comes back as one archive, $OUT/modern.tgz (the store, the
# report, the log), plus the report's claims as $OUT/claims.json.
#
# The data travels with the working tree (the device sees nothing outside it), so once, here:
#   mkdir -p .data && cp ../shared/datasets/cifar10-jpeg/train.tar.gz .data/   # .data/ is ignored
# and call the device's `run` with carry [".data"] and a command such as
#   BUDGET=480 bash benchmarks/gpu_modern.sh
# BUDGET (seconds) stops the study in time for the report: runs cut off are stored as
# interrupted and the report says how many finished. A dry run on any machine:
#   DATA=synthetic:100 EXTRA="--set epochs=1 --set seeds=0" \
#       OUT=/tmp/gm bash benchmarks/gpu_modern.sh
# To join its runs to a store of this machine's (trained on ../shared/...):
#   mkdir -p gpu && tar xzf modern.tgz -C gpu runs.db && squeezelab results merge gpu/runs.db --db STORE \
#       --data-path .data/train.tar.gz=../shared/datasets/cifar10-jpeg/train.tar.gz
# STORE=.data/runs.db goes on from an earlier call's store (carried in .data/): the runs it
# finished are not trained again, and runs it cut off start over, so a study longer than one
# call's BUDGET accumulates over calls. To go on from a store of this machine's instead, give
# its runs this data path first:
#   squeezelab results merge STORE --db .data/runs.db \
#       --data-path ../shared/datasets/cifar10-jpeg/train.tar.gz=.data/train.tar.gz
# No install step: the device has no package index, and its image already holds torch,
# torchvision, scipy, matplotlib, safetensors and tqdm, so the sources run from src/.
set -uo pipefail
OUT="${OUT:-gpu-modern}"
DATA="${DATA:-.data/train.tar.gz}"
BUDGET="${BUDGET:-480}"
PER_DEVICE="${PER_DEVICE:-8}"
read -r -a EXTRA <<< "${EXTRA:-}"
WORK="$(mktemp -d)"
mkdir -p "$OUT" "$WORK/report"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"

if [[ "$DATA" != synthetic* ]] && [ ! -e "$DATA" ]; then
    echo "gpu_modern.sh: no data at $DATA (copy the JPEG set there and carry .data)" >&2
    exit 2
fi
if [ -n "${STORE:-}" ]; then
    [ -f "$STORE" ] || { echo "gpu_modern.sh: no store at $STORE (carry its folder)" >&2; exit 2; }
    cp "$STORE" "$WORK/runs.db"
    echo "going on from $STORE"
fi
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv
start=$(date +%s)
for study in ${STUDIES:-modern-compare research/modern-search-4 research/modern-search-5 research/modern-search-6 research/modern-search-7 research/modern-search-8}; do
    left=$((BUDGET - ($(date +%s) - start)))
    [ "$left" -gt 30 ] || { echo "$study: no time left in BUDGET"; continue; }
    timeout --signal=TERM --kill-after=30 "$left" "$PY" -m squeezelab study run "$study" \
        --data "$DATA" --db "$WORK/runs.db" --runs-dir "$WORK/runs" \
        --runs-per-device "$PER_DEVICE" "${EXTRA[@]}" 2>&1 | tee -a "$WORK/study.log" | tail -20
    echo "$study: exit ${PIPESTATUS[0]} after $(($(date +%s) - start)) s"
done
"$PY" -m squeezelab study status --db "$WORK/runs.db"
"$PY" -m squeezelab report --db "$WORK/runs.db" --out "$WORK/report" --json \
    > "$OUT/claims.json" 2> "$WORK/report.log"
echo "report: exit $?"
tar czf "$OUT/modern.tgz" -C "$WORK" runs.db study.log report report.log
ls -la "$OUT"
