#!/usr/bin/env bash
# The first CUDA evidence in one command. A GPU machine comes rarely, for minutes, and runs one command for
# at most 10 of them; so this fits a 570 s limit with margin (a 530 s budget counted from its start), runs the
# most important evidence first, and writes each part's result into $OUT the moment the part ends: a command
# cut off at its limit still brings back everything that finished before.
#
#   bash benchmarks/gpu_once.sh                              # on the GPU machine, with .gpu-site/ carried along
#   GPU_DRY_RUN=1 OUT=/tmp/x bash benchmarks/gpu_once.sh     # on a CPU: every part on the tiny model, a few steps
#
# What lands in $OUT (8 files, no folders), copied to benchmarks/results/<date>-gpu-once/ as well:
#   0-summary.md         what ran, what failed with its last lines, the Unsloth / transformers ratios so far;
#                        rewritten after every part
#   1-env.log            real imports with versions and where each came from, unmet requirements, the CUDA
#                        device and its memory, a bf16 matmul, a 4-bit bitsandbytes layer; a failed import stops
#                        the script here
#   2-chain.log, .json   the Unsloth chain on the micro model in one process: SFT, merged save, GRPO, save,
#                        evaluation; then the GRPO checkpoint reloaded with plain transformers. LoRA first; full
#                        and QLoRA only when that leaves part 3 its share of the time (RATIO_RESERVE)
#   3-ratio.log, .json   the first ratio: qwen2_vl_2b LoRA, SFT then GRPO, the transformers arm then the Unsloth
#                        arm, each given the time left; the JSON is rewritten after every arm
#   4-more.log, .json    whatever else fits: qwen2_5_vl_3b LoRA GRPO, then qwen2_vl_2b full
#
# Settings: BUDGET (530 s), STEPS (6), IMAGE_SIZE (448), GEN_LEN (128), RATIO_RESERVE (330 s), CHAIN_MAX
# (300 s: one chain's most), PYTHON (python3), CACHE (benchmarks/.cache: the built checkpoints), RESULTS
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
  ratio=(tiny lora sft grpo)
  more=("tiny full grpo" "tiny full sft")
else
  extras=(full qlora)
  STEPS=${STEPS:-6} IMAGE_SIZE=${IMAGE_SIZE:-448} GEN_LEN=${GEN_LEN:-128}
  ratio=(qwen2_vl_2b lora sft grpo)
  more=("qwen2_5_vl_3b lora grpo" "qwen2_vl_2b full sft grpo")
fi
RATIO_RESERVE=${RATIO_RESERVE:-330}  # part 3's share: about one qwen2_vl_2b LoRA arm pair (an estimate)
CHAIN_MAX=${CHAIN_MAX:-300}
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
# The logs are appended to and run_all appends to 4-more.json: a reused folder must not mix in an old run
rm -f "$OUT"/{0-summary.md,1-env.log,2-chain.log,2-chain.json,3-ratio.log,3-ratio.json,4-more.log,4-more.json}
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
    5) state=$(tail -n 1 "$OUT/$log") ;;  # gpu_once.py's "cannot run here": its last line says why
    124|137) state="cut off at its limit ($limit s: the budget's end or its cap)" ;;
    *) state="failed (exit $rc)" ;;
  esac
  record "$name" "$state" $(( SECONDS - start )) "$log"
  return $rc
}

# mode: the chain in one process, then its GRPO checkpoint through plain transformers. A chain far over its
# estimate (100-210 s) is stuck: it is cut at CHAIN_MAX so that the ratio still gets its turn.
chain() {
  cap=$CHAIN_MAX part "2 chain $1" 2-chain.log "$PY" benchmarks/gpu_once.py chain --mode "$1" \
      --json "$OUT/2-chain.json" --work "$work" &&
    cap=120 part "2 reload $1" 2-chain.log "$PY" benchmarks/gpu_once.py reload --mode "$1" --json "$OUT/2-chain.json"
}

bench() {  # name log model mode stage...: both arms through run_all, its JSON rewritten after each arm
  local name=$1 log=$2 model=$3 mode=$4
  shift 4
  part "$name" "$log" "$PY" benchmarks/run_all.py --models "$model" --modes "$mode" --stages "$@" \
    --arms transformers unsloth --steps "$STEPS" --image-size "$IMAGE_SIZE" --gen-len "$GEN_LEN" \
    --cache "$CACHE" --keep-models --stream --deadline "$deadline" --json "$OUT/${log%.log}.json" --append
}

echo "gpu_once.sh: ${dry:+dry run, }budget $BUDGET s, results in $OUT"

# 1. Nothing else is worth running when an import fails: stop with its traceback in 1-env.log.
if ! part "1 environment" 1-env.log "$PY" benchmarks/gpu_once.py env --json "$work/env.json" ${dry:+--dry-run}
then
  echo "stopped: the environment check failed (see 1-env.log)"
  cat "$OUT/0-summary.md"
  exit 1
fi

# 2. The product's own path through Unsloth, end to end; full and QLoRA only if part 3 keeps its share.
started=$SECONDS
chain lora
took=$(( SECONDS - started ))
for mode in "${extras[@]}"; do
  if (( BUDGET - SECONDS - took >= RATIO_RESERVE )); then
    chain "$mode"
  else
    record "2 chain $mode" "skipped: left the time to the ratio (part 3)" 0 2-chain.log
  fi
done

# 3. The headline figure: the same LoRA workload, transformers then Unsloth.
bench "3 ratio ${ratio[*]}" 3-ratio.log "${ratio[@]}"

# 4. As far as the budget goes.
for spec in "${more[@]}"; do
  # shellcheck disable=SC2086  # spec is "model mode stage...", split on purpose
  bench "4 more $spec" 4-more.log $spec
done

echo
cat "$OUT/0-summary.md"
# The exit status says whether every part that ran succeeded (parts skipped for time do not count).
! cut -f2 "$work/parts.tsv" | grep -qv -e '^ok$' -e '^skipped'
