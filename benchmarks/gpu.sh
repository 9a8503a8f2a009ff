#!/usr/bin/env bash
# The GPU half of the benchmark and the GPU-marked tests, in parts that each fit one 10-minute command.
# On the development machine, once:   ../shared/gpu/pack-site.sh        (builds .gpu-site/, carried along)
# On the GPU machine, from the repository root:
#   export PYTHONPATH=$PWD/.gpu-site:$PWD
#   bash benchmarks/gpu.sh check                    # what the image lacks, before spending time (seconds)
#   bash benchmarks/gpu.sh tests                    # tests/test_gpu.py: the Unsloth chain, preflight, bench arms
#   bash benchmarks/gpu.sh qwen2_vl_2b lora         # one model and mode: SFT and GRPO, every arm that can run
#   bash benchmarks/gpu.sh qwen2_vl_7b lora grpo    # ... one stage of it
#   bash benchmarks/gpu.sh all                      # every part in turn (longer than one 10-minute command)
# Results go to benchmarks/results/ (and to $OUT when it is set). STEPS, IMAGE_SIZE, GEN_LEN override the
# workload (defaults 6 steps, 448x448 images, 128-token completions).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=${PYTHONPATH:-$PWD/.gpu-site:$PWD}
export TOKENIZERS_PARALLELISM=false
results=benchmarks/results
mkdir -p "$results"
stamp=$(date +%Y%m%d-%H%M%S)
trap 'if [ -n "${OUT:-}" ]; then mkdir -p "$OUT" && cp -r "$results" "$OUT/"; fi' EXIT  # results come back even after a failure

check() {
  python - <<'PY'
import importlib.util, torch
need = ["trl", "unsloth", "unsloth_zoo", "datasets", "math_verify", "transformers", "peft", "bitsandbytes"]
missing = [m for m in need if importlib.util.find_spec(m) is None]
print("cuda:", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")
print("missing for the benchmark:", missing or "nothing")
if importlib.util.find_spec("matplotlib") is None:
    print("matplotlib missing: `rrft-studio train` writes its plots with it, so tests/test_gpu.py's chain tests "
          "fail at the report; the benchmark does not need it")
print("vllm:", "installed" if importlib.util.find_spec("vllm") else "not installed (the vLLM arms are skipped)")
PY
}

bench() {  # model mode [stage]; built checkpoints stay in benchmarks/.cache for the next part (45 GB for all)
  python benchmarks/run_all.py --models "$1" --modes "$2" --stages ${3:-sft grpo} --steps "${STEPS:-6}" \
    --image-size "${IMAGE_SIZE:-448}" --gen-len "${GEN_LEN:-128}" --timeout 540 --keep-models \
    2>&1 | tee "$results/$stamp-$1-$2${3:+-$3}.txt"
}

case "${1:-all}" in
  check) check ;;
  tests) python -m pytest tests/test_gpu.py -m gpu -q -rs -p no:cacheprovider 2>&1 | tee "$results/$stamp-gpu-tests.txt" ;;
  all)
    check
    for part in "qwen2_vl_2b lora" "qwen2_vl_2b full" "qwen2_5_vl_3b lora" "qwen2_vl_7b lora" "qwen2_5_vl_7b lora"; do
      bench $part
    done ;;
  *) bench "$1" "${2:-lora}" "${3:-}" ;;
esac
