#!/usr/bin/env bash
# One device call: the 8B QLoRA comparison, wheels to results, what the leases of 2026-12-04 ran.
# Before it, on this machine: the wheels of benchmarks/train_device_wheels.txt (with the cut bitsandbytes
# wheel it describes, 26 MiB together) in .dev/whl/, and `git rev-parse --short HEAD > .dev/commit`; then
#   run(command="bash benchmarks/gpu_train_8b.sh CONFIGS BUDGET_S", carry=[".dev"])
# CONFIGS: train_gpu.py --configs (default: ftp's default and TRL's two fastest of 2026-12-04); BUDGET_S:
# start no run after this many seconds (a run is ~35 s, preparing the model ~45 s; a call may take 600 s).
# The results file goes straight to $OUT and is rewritten after every run, so a call cut short by the device
# budget still brings back what finished.
set -u
configs=${1:-ftp-graphs-paged8,trl-packing,trl-packing-liger}
budget=${2:-430}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .dev/whl/*.whl 2>&1 | grep -v WARNING | tail -3
export PYTHONPATH=/tmp/site:$PWD
mkdir -p /tmp/tb/work "$OUT"
cd benchmarks || exit 1
python3 -c "import bitsandbytes, liger_kernel, trl, transformers, torch; print(torch.__version__, \
transformers.__version__, trl.__version__, bitsandbytes.__version__)"
timeout 120 python3 swaps_gpu.py --out "$OUT/swaps_gpu.json" > "$OUT/swaps.log" 2>&1; echo "swaps_gpu rc=$?"
tail -14 "$OUT/swaps.log"
python3 train_gpu.py --shape 8b --steps 10 --work /tmp/tb/work --out "$OUT/r.json" --configs "$configs" \
    --repeats 3 --warmup 1 --run-timeout-s 120 --budget-s "$budget" --commit "$(cat ../.dev/commit)" --profile \
    2>&1 | tee "$OUT/run.log" | grep -v '^\s*$' | tail -22
