#!/usr/bin/env bash
# The GPU half of the benchmark and the GPU-marked tests, in parts that each fit one 10-minute command.
# For a first look at a GPU in one command, run benchmarks/gpu_once.sh instead.
# On the development machine, once:   ../shared/gpu/pack-site.sh        (builds .gpu-site/, carried along)
# On the GPU machine, from the repository root (gpu_env.sh puts .gpu-site first on PYTHONPATH):
#   bash benchmarks/gpu.sh check                    # what the image lacks, before spending time (seconds)
#   bash benchmarks/gpu.sh tests lora               # tests/test_gpu.py, one part: lora | full | qlora | arms
#   bash benchmarks/gpu.sh tests list               # which tests each part runs
#   bash benchmarks/gpu.sh qwen2_vl_2b lora         # one model and mode: SFT and GRPO, every arm that can run
#   bash benchmarks/gpu.sh qwen2_vl_7b lora grpo    # ... one stage of it
#   bash benchmarks/gpu.sh all                      # every benchmark part in turn (longer than one command)
# Logs go to benchmarks/results/, and to $OUT as they are written when it is set (a command killed at its
# time limit runs no exit handler); a benchmark's JSON goes to $OUT when it is set, else to results/.
# STEPS, IMAGE_SIZE, GEN_LEN override the workload (defaults 6 steps, 448x448 images, 128-token completions);
# PYTHON the interpreter (python3).
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/gpu_env.sh
results=benchmarks/results
mkdir -p "$results" ${OUT:+"$OUT"}
stamp=$(date +%Y%m%d-%H%M%S)

keep() {  # name: stdin into results/<name>, and into $OUT/<name> at once
  tee "$results/$1" ${OUT:+"$OUT/$1"}
}

check() {
  "$PY" - <<'PY'
import importlib.util, torch
need = ["trl", "unsloth", "unsloth_zoo", "datasets", "math_verify", "transformers", "peft", "bitsandbytes"]
missing = [m for m in need if importlib.util.find_spec(m) is None]
print("cuda:", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")
print("missing for the GPU runs:", ", ".join(missing) if missing else "nothing",
      "(../shared/gpu/pack-site.sh packs them into .gpu-site/)" if missing else "")
optional = {
    "xformers": "Unsloth uses PyTorch's SDPA attention instead",
    "matplotlib": "`rrft-studio train` cannot draw its plots; tests/test_gpu.py skips test_unsloth_chain",
    "vllm": "the vLLM arms are skipped",
    "gradio": "the studio cannot start; no GPU run needs it",
}
for name, without in optional.items():
    if importlib.util.find_spec(name) is None:
        print(f"{name} not installed: {without}")
PY
}

# The parts of tests/test_gpu.py. Each Unsloth process pays 15-30 s of import and up to 90 s of compilation,
# and a chain on the micro model takes 100-210 s: at most two chains fit one 10-minute command.
test_ids() {  # part: its pytest node ids, one per line (a test without [...] means all its cases)
  local t=tests/test_gpu.py
  case $1 in
    lora) printf '%s\n' "$t::test_stages_checkpoints_and_eval_through_unsloth[lora]" "$t::test_unsloth_chain[lora]" \
            "$t::test_final_checkpoint_loads_with_transformers" ;;  # the last reuses the first's LoRA chain
    full) printf '%s\n' "$t::test_stages_checkpoints_and_eval_through_unsloth[full]" "$t::test_unsloth_chain[full]" ;;
    qlora) printf '%s\n' "$t::test_stages_checkpoints_and_eval_through_unsloth[qlora]" \
             "$t::test_unsloth_chain[qlora]" ;;
    arms) printf '%s\n' "$t::test_auto_picks_unsloth_on_cuda" \
            "$t::test_fast_inference_without_vllm_is_refused_before_the_run" \
            "$t::test_preflight_says_whether_it_fits_here" "$t::test_benchmark_unsloth_arm" ;;
    *) echo "unknown part '$1': lora, full, qlora or arms" >&2; return 2 ;;
  esac
}

tests() {
  local part=${1:-} ids
  if [ -z "$part" ] || [ "$part" = list ]; then
    for p in lora full qlora arms; do test_ids "$p" | sed "s/^/$p /"; done
    [ -n "$part" ] || { echo "give a part: bash benchmarks/gpu.sh tests lora|full|qlora|arms" >&2; return 2; }
    return 0
  fi
  mapfile -t ids < <(test_ids "$part")
  [ "${#ids[@]}" -gt 0 ] || return 2
  "$PY" -m pytest "${ids[@]}" -m gpu -q -rs -p no:cacheprovider 2>&1 | keep "$stamp-gpu-tests-$part.txt"
}

bench() {  # model mode [stage]; built checkpoints stay in benchmarks/.cache for the next part (45 GB for all)
  local name="$stamp-$1-$2${3:+-$3}"
  "$PY" benchmarks/run_all.py --models "$1" --modes "$2" --stages ${3:-sft grpo} --steps "${STEPS:-6}" \
    --image-size "${IMAGE_SIZE:-448}" --gen-len "${GEN_LEN:-128}" --timeout 540 --keep-models \
    --json "${OUT:-$results}/$name.json" 2>&1 | keep "$name.txt"
}

case "${1:-all}" in
  check) check ;;
  tests) tests "${2:-}" ;;
  all)
    check
    for part in "qwen2_vl_2b lora" "qwen2_vl_2b full" "qwen2_5_vl_3b lora" "qwen2_vl_7b lora" "qwen2_5_vl_7b lora"; do
      bench $part
    done ;;
  *) bench "$1" "${2:-lora}" "${3:-}" ;;
esac
