#!/usr/bin/env bash
# Does the vLLM install set still resolve? A dry run of `pip install -c constraints-vllm.txt -e ".[vllm,test]"`
# in a throwaway virtual environment, against PyPI only: nothing is installed, the wheels are not downloaded
# (pip reads each wheel's metadata with range requests), and the environment is removed afterwards. Prints the
# versions that decide whether Unsloth's vLLM rollouts can work (vllm, torch, trl, transformers, xformers) and
# exits with pip's status: non-zero when the set no longer resolves.
#
#   bash scripts/check-vllm-set.sh              # about a minute; needs PyPI
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT
# PyPI alone: a local wheel folder (a CPU-only torch, say) would hide the CUDA wheels' real requirements
export PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= PIP_EXTRA_INDEX_URL= PIP_DISABLE_PIP_VERSION_CHECK=1
unset PIP_INDEX_URL PIP_CONSTRAINT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --upgrade 'pip>=24'  # fast-deps in a dry run needs pip 24 or newer
if ! "$tmp/venv/bin/pip" install --dry-run --ignore-installed --use-feature=fast-deps --report "$tmp/report.json" \
    -c constraints-vllm.txt -e "$root[vllm,test]" >"$tmp/pip.log" 2>&1; then
  echo "the vLLM set does not resolve:" >&2
  grep -E '^ERROR|conflict is caused|^    [A-Za-z]' "$tmp/pip.log" >&2 || tail -20 "$tmp/pip.log" >&2
  exit 1
fi
"$tmp/venv/bin/python" - "$tmp/report.json" <<'PY'
import json, re, sys
report = json.load(open(sys.argv[1]))
got = {re.sub(r"[-_.]+", "-", i["metadata"]["name"]).lower(): i["metadata"]["version"] for i in report["install"]}
print(f"resolves: {len(got)} packages; " + ", ".join(f"{k} {got.get(k, '-')}" for k in (
    "vllm", "torch", "torchvision", "triton", "trl", "transformers", "xformers", "unsloth", "unsloth-zoo")))
PY
