#!/usr/bin/env bash
# The first CUDA evidence in one command. A GPU machine comes rarely, for minutes, and runs one command for
# at most 10 of them; so this fits a 570 s limit with margin (a 530 s budget counted from its start), runs the
# most important evidence first, and writes each part's result into $OUT the moment the part ends: a command
# cut off at its limit still brings back everything that finished before.
#
#   bash benchmarks/gpu_once.sh                              # on the GPU machine, with .gpu-site/ carried along
#   GPU_DRY_RUN=1 OUT=/tmp/x bash benchmarks/gpu_once.sh     # on a CPU: every part on the tiny model, a few steps
#
# The parts, in this order (what the run must answer first comes first):
#   1 environment        real imports, then TRL's trainer classes as Unsloth's import left them; a failed import
#                        stops the script here
#   2 master weights     a full fine-tune of the micro model through the product's loader and Unsloth, bf16:
#                        trainable weights fp32, one SFT step at lr 1e-6 changes them (cap 150 s)
#   3 GRPO ratio         qwen2_vl_2b LoRA GRPO, the transformers arm then the Unsloth arm, given the time left
#   4 chain              the Unsloth chain on the micro model, LoRA, then full, then QLoRA while another chain
#                        fits in the time left (each capped at CHAIN_MAX), its checkpoint reloaded after each
#   5 SFT ratio          qwen2_vl_2b LoRA SFT, both arms
#   6 more               whatever else fits: qwen2_5_vl_3b LoRA GRPO, then qwen2_vl_2b full SFT and GRPO
#
# What lands in $OUT (8 files, no folders: the most a GPU command brings back), copied to
# benchmarks/results/<date>-gpu-once/ as well:
#   0-summary.md         what ran, what failed with its last lines, the Unsloth / transformers ratios so far, the
#                        master weights, the chain; rewritten after every part
#   1-env.log            part 1: imports with versions and where each came from, trl.SFTTrainer and
#                        trl.GRPOTrainer's classes, unmet requirements, the CUDA device and its memory, a bf16
#                        matmul, a 4-bit bitsandbytes layer
#   2-master.log, .json  part 2: trainable and frozen weights' dtypes, the trainer's class, the share of weights
#                        one step changed, the dtypes the forward ran in; exit 4 when not fp32 or not moved
#   3-ratio.log, .json   parts 3, 5 and 6: every Unsloth / transformers arm (run_all.py), the JSON rewritten
#                        after every arm
#   4-chain.log, .json   part 4: SFT, merged save, GRPO, save, evaluation in one process; then the GRPO
#                        checkpoint reloaded with plain transformers
#
# Settings: BUDGET (530 s), STEPS (6), IMAGE_SIZE (448), GEN_LEN (128), CHAIN_MAX (240 s: one chain's estimate
# of 100-210 s with margin), PYTHON (python3), CACHE (benchmarks/.cache: the built checkpoints), RESULTS
# (benchmarks/results; empty: no copy).
set -uo pipefail  # not -e: a failed part is recorded, and the parts after it still run
cd "$(dirname "$0")/.."
SECONDS=0
BUDGET=${BUDGET:-530}
dry=${GPU_DRY_RUN:-}
if [ -n "$dry" ]; then
  # .gpu-site is built for the GPU image's Python 3.12: a dry run checks the interpreter it is given, as is
  GPU_SITE=${GPU_SITE-}
  STEPS=${STEPS:-2} IMAGE_SIZE=${IMAGE_SIZE:-56} GEN_LEN=${GEN_LEN:-16}
  # a full chain through transformers is what the CPU test suite already runs: QLoRA checks the skip path
  extras=(qlora)
  model=tiny
  more=("tiny full grpo" "tiny full sft")
else
  extras=(full qlora)
  STEPS=${STEPS:-6} IMAGE_SIZE=${IMAGE_SIZE:-448} GEN_LEN=${GEN_LEN:-128}
  model=qwen2_vl_2b
  more=("qwen2_5_vl_3b lora grpo" "qwen2_vl_2b full sft grpo")
fi
CHAIN_MAX=${CHAIN_MAX:-240}
CACHE=${CACHE:-benchmarks/.cache}
source benchmarks/gpu_env.sh
stamp=$(date +%Y%m%d-%H%M%S)
# run_all stops its arms by this Unix time, 15 s before the budget's end, so that it records the arm it cut
deadline=$(( $(date +%s) + BUDGET - 15 ))

OUT=${OUT:-benchmarks/results/$stamp-gpu-once}
copy=""
if [ -n "${RESULTS-benchmarks/results}" ] && [ "$OUT" != "benchmarks/results/$stamp-gpu-once" ]; then
  copy=${RESULTS:-benchmarks/results}/$stamp-gpu-once${dry:+-dry}
  mkdir -p "$copy"
fi
mkdir -p "$OUT"
# The logs are appended to and run_all appends to 3-ratio.json: a reused folder must not mix in an old run
rm -f "$OUT"/{0-summary.md,1-env.log,2-master.log,2-master.json,3-ratio.log,3-ratio.json,4-chain.log,4-chain.json}
work=$(mktemp -d)  # the chain's runs and the part list: not evidence, so not in $OUT
trap 'rm -rf "$work"' EXIT
: >"$work/parts.tsv"

summarise() {  # 0-summary.md from what has run so far, and the copy into the tree
  if ! "$PY" benchmarks/gpu_once.py summary --out "$OUT" --parts "$work/parts.tsv" --env "$work/env.json" \
      --budget "$BUDGET" --elapsed "$SECONDS" ${dry:+--dry-run} >"$work/summary.log" 2>&1; then
    # the summary must exist even when Python cannot write it: the part list and the reason, as they are
    { echo "# gpu_once.sh: the summary writer failed"; echo; tail -5 "$work/summary.log"; echo
      cat "$work/parts.tsv"; } >"$OUT/0-summary.md"
  fi
  if [ -n "$copy" ]; then cp "$OUT"/* "$copy"/; fi
}

record() {  # name state seconds log
  printf '%s\t%s\t%s\t%s\n' "$@" >>"$work/parts.tsv"
  echo "   $1: $2 ($3 s; ${SECONDS} s of $BUDGET used)"
  summarise
}

# part NAME LOG COMMAND...: runs one part with its output appended to $OUT/LOG, killed at the budget's end
# (5 s before it, to leave time for the summary) or after $cap seconds when the caller sets cap; returns the
# command's status
part() {
  local name=$1 log=$2 limit=$(( BUDGET - SECONDS - 5 )) start=$SECONDS rc state
  shift 2
  if (( limit < 20 )); then
    record "$name" "skipped: the budget is spent" 0 "$log"
    return 1
  fi
  if [ -n "${cap:-}" ] && (( cap < limit )); then limit=$cap; fi
  echo "== $name (up to $limit s)" | tee -a "$OUT/$log"
  timeout -k 5 "$limit" "$@" >>"$OUT/$log" 2>&1
  rc=$?
  case $rc in
    0) state=ok ;;
    4) state=$(tail -n 1 "$OUT/$log") ;;  # gpu_once.py's "a check failed": its last line, "failed: <which>"
    5) state=$(tail -n 1 "$OUT/$log") ;;  # gpu_once.py's "cannot run here": its last line says why
    124|137) state="cut off at its limit ($limit s: the budget's end or its cap)" ;;
    *) state="failed (exit $rc)" ;;
  esac
  record "$name" "$state" $(( SECONDS - start )) "$log"
  return $rc
}

# mode: the chain in one process, then its GRPO checkpoint through plain transformers. A chain far over its
# estimate (100-210 s) is stuck: it is cut at CHAIN_MAX so that the SFT ratio still gets its turn.
chain() {
  cap=$CHAIN_MAX part "4 chain $1" 4-chain.log "$PY" benchmarks/gpu_once.py chain --mode "$1" \
      --json "$OUT/4-chain.json" --work "$work" &&
    cap=120 part "4 reload $1" 4-chain.log "$PY" benchmarks/gpu_once.py reload --mode "$1" --json "$OUT/4-chain.json"
}

# name model mode stage...: both arms through run_all, into 3-ratio.log and .json (every bench part appends to
# the same two files: 8 files at most come back), the JSON rewritten after each arm
bench() {
  local name=$1 model=$2 mode=$3
  shift 3
  part "$name" 3-ratio.log "$PY" benchmarks/run_all.py --models "$model" --modes "$mode" --stages "$@" \
    --arms transformers unsloth --steps "$STEPS" --image-size "$IMAGE_SIZE" --gen-len "$GEN_LEN" \
    --cache "$CACHE" --keep-models --stream --deadline "$deadline" --json "$OUT/3-ratio.json" --append
}

echo "gpu_once.sh: ${dry:+dry run, }budget $BUDGET s, results in $OUT"

# 1. Nothing else is worth running when an import fails: stop with its traceback in 1-env.log.
if ! part "1 environment" 1-env.log "$PY" benchmarks/gpu_once.py env --json "$work/env.json" ${dry:+--dry-run}
then
  echo "stopped: the environment check failed (see 1-env.log)"
  cat "$OUT/0-summary.md"
  exit 1
fi

# 2. Does a full fine-tune keep fp32 master weights that one step at GRPO's learning rate really changes? Its own
# process (Unsloth first); a failure is recorded and the parts after it still run.
cap=150 part "2 master weights" 2-master.log "$PY" benchmarks/gpu_once.py master --json "$OUT/2-master.json" \
  --work "$work"

# 3. The headline figure: GRPO on the same LoRA workload, transformers then Unsloth, each arm given the time left.
bench "3 GRPO ratio $model lora" "$model" lora grpo

# 4. The product's own path through Unsloth, end to end: LoRA, then full and QLoRA while the time left holds
# another chain as long as the LoRA one took (a chain cut off half-way tells less than the SFT ratio after it).
started=$SECONDS
chain lora
took=$(( SECONDS - started ))
for mode in "${extras[@]}"; do
  if (( BUDGET - SECONDS - 5 >= took )); then
    chain "$mode"
  else
    record "4 chain $mode" "skipped: $(( BUDGET - SECONDS )) s left, the LoRA chain took $took s" 0 4-chain.log
  fi
done

# 5. The second figure: SFT on the same LoRA workload, both arms.
bench "5 SFT ratio $model lora" "$model" lora sft

# 6. As far as the budget goes.
for spec in "${more[@]}"; do
  # shellcheck disable=SC2086  # spec is "model mode stage...", split on purpose
  bench "6 more $spec" $spec
done

echo
cat "$OUT/0-summary.md"
# The exit status says whether every part that ran succeeded (parts skipped for time do not count).
! cut -f2 "$work/parts.tsv" | grep -qv -e '^ok$' -e '^skipped'
