"""Training: a run's stages (CoT-SFT, then GRPO) through TRL's trainers, on one process or several.

pipeline.py runs `rrft-studio train` (checks, run directory, stages, evaluations, report); sft.py and grpo.py are
the stages; launch.py starts the ranks through accelerate; progress.py is what a stage writes while it runs and
what stops it; trackers.py the experiment trackers; rollout_server.py GRPO's vLLM server; preflight.py the memory
estimate.
"""
