#!/usr/bin/env bash
# The GPU machine's entry point: tools/gpu-check.sh stages this file as .gpu-stage/run.sh beside
# the runner (tools/gpu_run.py → .gpu-stage/gpu_run.py) and the gzipped binaries. One device-tool
# call from the repository root runs the whole check within 8 minutes:
#
#     command: bash .gpu-stage/run.sh     carry: [".gpu-stage"]     timeout_s: 480
#
# Arguments pass through: --dry-run (what tools/gpu-check.sh --dry-run runs here), --plan.
# Python's output is unbuffered, so the device tool's output tail and $OUT's report show every
# step as it ends, also when the call is cut short.
stage=$(cd "$(dirname "$0")" && pwd)
export PYTHONUNBUFFERED=1
exec python3 -u "$stage/gpu_run.py" "$@"
