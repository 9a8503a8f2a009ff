# Sourced by gpu.sh and gpu_once.sh from the repository root: the interpreter and environment of a GPU run.

# On the GPU image `python3` is the interpreter that has torch (`python` may be another one or none);
# PYTHON names another, e.g. a virtual environment's.
PY=${PYTHON:-python3}

# .gpu-site/ (built by ../shared/gpu/pack-site.sh) holds what the image lacks and must win over the image's
# own copies, so it goes first; a PYTHONPATH the image already sets is kept behind it, not replaced.
# GPU_SITE names another folder; set to empty, nothing is added.
gpu_site=${GPU_SITE-$PWD/.gpu-site}
export PYTHONPATH=${gpu_site:+$gpu_site:}$PWD${PYTHONPATH:+:$PYTHONPATH}

# Nothing can be downloaded there, and offline each Unsloth model load waits seconds probing the network
# (the hub and Unsloth's statistics) unless told not to.
export HF_HUB_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1
# Unsloth sizes its compile workers from the visible devices: unset, it may compile with one thread.
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-0}
# Tokenizers' own threads fight the training processes' for the cores; unbuffered output reaches the logs
# as it happens, so a command killed at its time limit still leaves its last lines.
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
