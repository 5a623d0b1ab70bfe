"""The files of a run directory (names only: importing this needs no torch)."""

CHECKPOINT = "checkpoint.safetensors"  # resume state: weights, optimizer, scheduler, RNG
MODEL = "model.safetensors"  # final weights
RESULT = "result.json"
METRICS_FILE = "metrics.jsonl"
CONFIG = "config.json"
