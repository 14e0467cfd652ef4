#!/usr/bin/env bash
# One H200 lease, after the wheels are carried to /tmp/w (.whl: benchmarks/quality/device_wheels.txt) and /tmp/g
# (.gemma; benchmarks/README.md,
# "On one H200"): install them, then
# the serving benchmark and the evaluation-cost benchmark one after the other, in the background so the
# work outlives the device call; poll /tmp/gb/run.log for "ALL DONE". Usage (repo root, on the device):
#   bash benchmarks/gpu_serve_eval.sh COMMIT
set -u
commit=${1:-unknown}
mkdir -p /tmp/gb /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site /tmp/w/*.whl /tmp/g/*.whl
export PYTHONPATH=/tmp/site FTP_CACHE_DIR=/tmp/ftp-cache FTP_COMMIT=$commit
{
  nvidia-smi --query-gpu=name,clocks.sm,memory.used --format=csv
  python3 -c "import transformers, peft, torch, fastapi; print(torch.__version__, transformers.__version__, peft.__version__, fastapi.__version__)"
  start=$(date +%s)
  python3 benchmarks/serve_gpu.py --work /tmp/sv --out /tmp/gb/serve_gpu.json --repeats 3 --clients 1,8,32 \
      --per-client 2 --max-tokens 48
  echo "serve: $(( $(date +%s) - start )) s"
  start=$(date +%s)
  python3 benchmarks/eval_gpu.py --work /tmp/ev --out /tmp/gb/eval_gpu.json --task intent --repeats 3 --plain 0 \
      --commit "$commit"
  echo "eval: $(( $(date +%s) - start )) s"
  echo "ALL DONE"
} > /tmp/gb/run.log 2>&1 < /dev/null
