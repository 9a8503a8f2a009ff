"""The `rrft-studio` command: a dispatcher over the stages, the evaluator and the data generators.

    rrft-studio train presets/demo.yaml [key=value ...]     run the preset's stages (sft, grpo) and evaluate
    rrft-studio train --resume runs/<run>                   continue a stopped or killed run
    rrft-studio train PRESET --processes 4 [--accelerate-config zero3]   the same run on 4 GPUs (accelerate launch)
    rrft-studio config show presets/demo.yaml [key=value]   the resolved config, each field with its doc
    rrft-studio preflight presets/counting_2b.yaml [k=v]    estimated peak GPU memory per stage, and whether it fits
    rrft-studio eval runs/<run> | <checkpoint> [key=value]  accuracy on the eval split
    rrft-studio eval --compare RUN_A RUN_B ...              several runs in one table, the paper's layout
    rrft-studio sweep presets/demo.yaml --seeds 0 1 2       one run per seed (--threads, --samples, --methods too)
    rrft-studio data generate counting --n 100 --out DIR    write a synthetic dataset (Reason-RFT schema)
    rrft-studio data check DATASET_DIR_OR_FILE [--task T]   records, images, answers, token lengths, problems
    rrft-studio rewards check PRESET [k=v] [--checkpoint RUN]  GRPO's rewards on the model's own samples, and a verdict
    rrft-studio rewards check PRESET --completions FILE     score given completions with the configured rewards
    rrft-studio chat RUN|CHECKPOINT --image PATH            talk to a model in the terminal (streaming)
    rrft-studio export RUN|CHECKPOINT --format merged --out DIR   a Hugging Face folder (or lora, gguf) with a model card
    rrft-studio serve RUN|CHECKPOINT [--port 8000]          an OpenAI-compatible API (/v1/chat/completions)

A user mistake exits with status 2 and one line naming the problem and the fix, before anything is written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import config, quiet_library_warnings, ranks, runs, settings, tasks
from .config import ConfigError

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
quiet_library_warnings()


class Parser(argparse.ArgumentParser):
    """argparse, where a command that takes key=value overrides also reads them after its options (`train PRESET
    --processes 2 k=v`, `data check PATH --task T PRESET k=v`): argparse's intermixed parsing, which it offers to
    parsers without subcommands."""

    intermixed = False

    def parse_known_args(self, args=None, namespace=None):
        if not self.intermixed:
            return super().parse_known_args(args, namespace)
        self.intermixed = False  # the intermixed parse goes through parse_known_args itself
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self.intermixed = True


def _preset_or_override(args) -> None:
    """A first positional written key=value is an override, not a preset (`train --resume RUN k=v`)."""
    if args.preset and "=" in args.preset:
        args.overrides.insert(0, args.preset)
        args.preset = None


def cmd_train(args) -> int:
    from .train import pipeline

    _preset_or_override(args)
    return pipeline.command(args.preset, args.overrides, Path(args.resume) if args.resume else None,
                            args.processes, args.accelerate_config, args.launcher, args.rewards_dir)


def cmd_preflight(args) -> int:
    from .train import preflight

    launch = [f"run.processes={args.processes}"] * (args.processes is not None) + \
             [f"run.accelerate_config={args.accelerate_config}"] * bool(args.accelerate_config)
    cfg = settings.load(args.preset, [*args.overrides, *launch])
    if not cfg.run.stages:
        raise ConfigError(f"method={cfg.method} trains nothing: preflight estimates the memory of the sft and grpo stages")
    backend, device = preflight.backend_for(cfg), preflight.gpu()
    from .train import trackers  # no training here: transformers may come before any Unsloth import

    trackers.check(cfg)
    print("\n\n".join(preflight.report(cfg, stage, backend, device=device) for stage in cfg.run.stages))
    return 0


def cmd_config_show(args) -> int:
    cfg = settings.load(args.preset, args.overrides)
    print(config.describe(cfg))
    return 0


def _eval_target(target: Path, overrides: list[str]) -> tuple[config.Config, str, Path | None]:
    """(config, checkpoint, run_dir or None) for a run directory (its last stage) or a checkpoint."""
    if runs.is_run(target):
        cfg = settings.load_run(target, overrides)
        stage = runs.last_finished_stage(target, cfg.run.stages)
        if stage is None:
            raise ConfigError(f"run '{target}' has no finished stage to evaluate: wait for it or resume it")
        return cfg, str(runs.final_dir(target, stage)), target
    if (target / "config.json").is_file():
        return settings.load(None, overrides), str(target), None
    raise ConfigError(f"'{target}' is neither a run directory nor a checkpoint (no config.yaml or config.json)")


def cmd_eval(args) -> int:
    from . import models
    from .eval import evaluate

    args.overrides = [t for t in args.targets if "=" in t]  # targets, then key=value overrides
    args.targets = [t for t in args.targets if "=" not in t]
    if args.compare:
        return _compare(args)
    if len(args.targets) != 1:
        raise ConfigError("eval takes one run or checkpoint; to put several in one table use --compare")
    cfg, checkpoint, _ = _eval_target(Path(args.targets[0]), args.overrides)
    models.choose_backend(cfg)
    splits = [args.split] if args.split else cfg.eval.splits
    label = args.label or Path(checkpoint).name
    results = []
    for split in splits:
        rows = evaluate.eval_rows(cfg, split)
        results.append(evaluate.evaluate(checkpoint, cfg, rows, label=label, split=split))
        print(evaluate.summary_line(results[-1]))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        runs.write_atomic(out, json.dumps(results if len(results) > 1 else results[0], indent=1))
        print(f"wrote {out}")
    return 0


def _compare(args) -> int:
    """Evaluate each run's finished stages on its splits (what is missing), then one table for all."""
    from . import models
    from .eval import evaluate, report, sweep
    from .train import pipeline

    targets = [Path(t) for t in args.targets]
    for target in targets:
        if not (runs.is_run(target) or sweep.is_sweep(target)):
            raise ConfigError(f"--compare takes run directories and sweep folders: '{target}' has neither a "
                              "config.yaml nor a sweep.json")
    run_dirs = [t for t in targets if runs.is_run(t)]  # a sweep's runs evaluated what they evaluate
    for run_dir in run_dirs:
        cfg = settings.load_run(run_dir, args.overrides)
        models.choose_backend(cfg)
        pipeline.quiet()
        for stage in cfg.run.stages:
            if runs.is_done(run_dir, stage):
                evaluate.evaluate_splits(cfg, run_dir, str(runs.final_dir(run_dir, stage)), stage)
    print(report.results_table(targets))
    return 0


def cmd_sweep(args) -> int:
    from . import models
    from .eval import sweep
    from .train import preflight

    cfg = settings.load(args.preset, args.overrides)
    if not (args.samples or args.seeds or args.threads or args.methods):
        raise ConfigError("a sweep needs an axis: --seeds 0 1 2 (the spread over seeds), --threads 1 2, "
                          "--samples 1600 3200 (data efficiency) or --methods cot_sft rft")
    for flag, values, least in (("--samples", args.samples, 1), ("--seeds", args.seeds, 0), ("--threads", args.threads, 1)):
        if any(v < least for v in values):
            raise ConfigError(f"{flag} takes whole numbers of at least {least}, e.g. {flag} {least} {least + 1}")
    points = sweep.plan(list(dict.fromkeys(args.methods)), sorted(set(args.samples)), list(dict.fromkeys(args.seeds)),
                        list(dict.fromkeys(args.threads)))
    if args.into:
        sweep.joinable(Path(args.into), args.preset, args.overrides)
    for point in points:  # every point's config is checked before the first run starts
        settings.load(args.preset, [*args.overrides, *sweep.overrides_of(point)])
    preflight.check_training_device(cfg)
    models.decide_backend(cfg)  # each run imports its backend in its own process: none here
    root = sweep.run(cfg, args.preset, args.overrides, points, Path(args.into) if args.into else None)
    print(sweep.table(sweep.load(root)))
    print(f"sweep: {root / 'sweep.json'}, {root / 'sweep.md'}, {root / 'sweep.png'}")
    return 0


def cmd_data_generate(args) -> int:
    task = tasks.get(args.task)
    if args.n < 1:
        raise ConfigError("--n must be at least 1")
    splits = ["train", *task.benchmarks]
    if args.split not in splits:
        raise ConfigError(f"--split {args.split}: {task.name} has the splits {', '.join(splits)}")
    out = Path(args.out)
    if (out / f"{args.split}.json").exists():
        raise ConfigError(f"'{out / (args.split + '.json')}' exists: choose another --out or --split")
    spec = task.split_spec(task.spec(), args.split)
    path = task.generate(out, n=args.n, seed=args.seed, spec=spec, split=args.split)
    print(f"wrote {args.n} records to {path}")
    return 0


def cmd_data_check(args) -> int:
    from . import datacheck

    _preset_or_override(args)
    if args.task and args.task not in config.TASKS:
        raise ConfigError(f"--task {args.task}: choose one of {', '.join(config.TASKS)}")
    path = Path(args.path).expanduser()
    if not path.exists():
        raise ConfigError(f"'{path}' not found: give a data file or the dataset's folder (train_jsons/, test_jsons/, images/)")
    cfg = settings.load(args.preset, args.overrides)
    _, text, problems = datacheck.run(path, args.task, cfg, tokens=not args.no_tokens, needs_cot=bool(args.preset))
    print(text)
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    return 2 if problems else 0


def cmd_rewards_check(args) -> int:
    from . import models, workbench

    if args.rewards_dir:  # searched last, as for train
        sys.path.append(str(Path(args.rewards_dir).expanduser().resolve()))
    if args.n < 1 or args.batch < 1:
        raise ConfigError("--n and --batch must be at least 1, e.g. --n 32")
    if args.completions and args.checkpoint:
        raise ConfigError("--completions scores given texts and --checkpoint samples a model: give one of them")
    cfg = settings.load(args.preset, args.overrides)
    if args.completions:
        summary, verdict, samples = workbench.check_completions(cfg, Path(args.completions).expanduser())
    else:
        models.choose_backend(cfg)
        from .train import pipeline

        pipeline.quiet()
        summary, verdict, samples = workbench.check_model(cfg, args.checkpoint, args.n, args.batch)
    print(workbench.text(summary, verdict, cfg))
    if args.json:
        out = Path(args.json).expanduser()
        out.parent.mkdir(parents=True, exist_ok=True)
        runs.write_atomic(out, workbench.to_json(summary, verdict, samples))
        print(f"wrote {out}")
    return 0


def cmd_chat(args) -> int:
    from .serve import terminal
    from .serve.inference import Settings

    settings = Settings(args.max_new_tokens, args.temperature, args.top_p, args.top_k)
    return terminal.chat_terminal(args.checkpoint, args.image, settings, device=args.device,
                                  trust_remote_code=args.trust_remote_code)


def cmd_export(args) -> int:
    from .serve import export

    out = export.export(args.target, args.format, args.out, args.dtype, args.push_to_hub)
    print(f"wrote {out}" + (f" and uploaded it to {args.push_to_hub}" if args.push_to_hub else ""))
    return 0


def cmd_serve(args) -> int:
    from .serve import server

    key = args.api_key or os.environ.get("RRFT_STUDIO_API_KEY") or None
    return server.serve(args.checkpoint, args.host, args.port, key, args.allow_dir, args.device, args.max_queue,
                        args.context_length, trust_remote_code=args.trust_remote_code, name=args.model_name)


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="rrft-studio", description="Reason-RFT (CoT-SFT then GRPO) on Qwen2-VL.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="run a preset's stages, then evaluate and report")
    t.add_argument("preset", nargs="?", help="presets/<name>.yaml")
    t.add_argument("overrides", nargs="*", help="key=value, e.g. sft.lr=1e-5 (see `config show`)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped, killed or failed run (key=value overrides "
                                                        "apply from there on, e.g. sft.lr=1e-5 after a divergence)")
    t.add_argument("--rewards-dir", metavar="DIR", help="a folder of reward modules for package.module:function rewards")
    t.add_argument("--processes", type=int, metavar="N", help="train on N processes, one per GPU, through accelerate "
                   "launch (run.processes=N); the stages keep their global batch")
    t.add_argument("--accelerate-config", metavar="NAME|FILE", help="ddp, fsdp2, zero2, zero3 (configs/accelerate/) "
                   "or an accelerate config file (run.accelerate_config)")
    t.add_argument("--launcher", choices=["auto", "accelerate", "none"], default="auto",
                   help="auto: accelerate launch when run.processes > 1 or an accelerate config is named; none: this "
                   "process only")
    t.set_defaults(func=cmd_train)
    t.intermixed = True

    pf = sub.add_parser("preflight", help="estimate each stage's peak GPU memory and whether it fits the GPU at hand")
    pf.add_argument("preset")
    pf.add_argument("overrides", nargs="*", help="key=value, e.g. grpo.num_generations=4")
    pf.add_argument("--processes", type=int, metavar="N", help="the memory of one GPU of N processes (run.processes)")
    pf.add_argument("--accelerate-config", metavar="NAME|FILE", help="ddp, fsdp2, zero2, zero3 or a file: what "
                    "is sharded over the processes (run.accelerate_config)")
    pf.set_defaults(func=cmd_preflight)
    pf.intermixed = True

    c = sub.add_parser("config", help="inspect configs")
    csub = c.add_subparsers(dest="config_command", required=True)
    show = csub.add_parser("show", help="print the resolved config with each field's doc")
    show.add_argument("preset")
    show.add_argument("overrides", nargs="*")
    show.set_defaults(func=cmd_config_show)

    e = sub.add_parser("eval", help="accuracy of a run's final checkpoint, or of a checkpoint directory")
    e.add_argument("targets", nargs="+", metavar="TARGET",
                   help="a run directory or a checkpoint directory (several with --compare), then key=value overrides")
    e.add_argument("--split", help="one evaluation split (default: eval.splits): id, ood, left, right")
    e.add_argument("--compare", action="store_true", help="evaluate several runs and print one table in the paper's layout")
    e.add_argument("--label", default="")
    e.add_argument("--out", help="also write the result (with every prediction) as JSON here")
    e.set_defaults(func=cmd_eval)

    w = sub.add_parser("sweep", help="one run per seed, thread count, training-set size or method, and the spread "
                       "of their results")
    w.add_argument("preset")
    w.add_argument("overrides", nargs="*")
    w.add_argument("--seeds", type=int, nargs="+", default=[], help="training seeds (run.seed), e.g. 0 1 2")
    w.add_argument("--threads", type=int, nargs="+", default=[], help="CPU threads per run (OMP_NUM_THREADS), e.g. "
                   "1 2: on a CPU where a run lands moves with them")
    w.add_argument("--samples", type=int, nargs="+", default=[], help="training-set sizes (data.max_samples), e.g. "
                   "1600 3200 6400: accuracy against samples")
    w.add_argument("--methods", nargs="+", default=[], choices=[m for m in config.METHODS if m != "zero_shot"],
                   help="one line per method, e.g. --methods cot_sft rft (default: the preset's method)")
    w.add_argument("--into", metavar="SWEEP", help="add these runs to an existing sweep folder of the same preset "
                   "and overrides (more seeds, another thread count, or the rest of a stopped sweep): one table")
    w.set_defaults(func=cmd_sweep)

    d = sub.add_parser("data", help="datasets")
    dsub = d.add_subparsers(dest="data_command", required=True)
    g = dsub.add_parser("generate", help="write a synthetic dataset in the Reason-RFT schema")
    g.add_argument("task", choices=list(tasks.SYNTHETIC))
    g.add_argument("--n", type=int, required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--split", default="train", help="train, or an evaluation split (id, ood, left, right)")
    g.set_defaults(func=cmd_data_generate)
    k = dsub.add_parser("check", help="records, images, answer kinds and token lengths of a data file or the dataset")
    k.add_argument("path", help="a data file (JSON, JSONL, parquet, saved datasets folder) or the dataset's folder")
    k.add_argument("preset", nargs="?", help="a preset whose model and limits to check against (default: the defaults)")
    k.add_argument("overrides", nargs="*", help="key=value, e.g. model.name=Qwen/Qwen2-VL-2B-Instruct")
    k.add_argument("--task", help="the task family (default: each task's files in the dataset; a single file: custom)")
    k.add_argument("--no-tokens", action="store_true", help="skip the token counts (no tokenizer is loaded)")
    k.set_defaults(func=cmd_data_check)
    k.intermixed = True
    rw = sub.add_parser("rewards", help="the reward workbench")
    rsub = rw.add_subparsers(dest="rewards_command", required=True)
    rc = rsub.add_parser("check", help="score GRPO's rewards on the starting model's samples (or given completions) "
                         "and say whether GRPO will learn")
    rc.add_argument("preset")
    rc.add_argument("overrides", nargs="*", help="key=value, e.g. grpo.temperature=1.2 grpo.num_generations=16")
    rc.add_argument("--n", type=int, default=32, help="training prompts to sample (each grpo.num_generations times)")
    rc.add_argument("--checkpoint", help="a run directory (its final/sft, what GRPO starts from) or a checkpoint "
                    "folder (default: the preset's model)")
    rc.add_argument("--completions", metavar="FILE", help="score these instead: JSONL of {completion, answer[, task, "
                    "group]}; groups are the group key, else blocks of grpo.num_generations rows")
    rc.add_argument("--json", metavar="FILE", help="also write the summary, the verdict and every sample's scores here")
    rc.add_argument("--batch", type=int, default=64, help="completions per generate call")
    rc.add_argument("--rewards-dir", metavar="DIR", help="a folder of reward modules for package.module:function rewards")
    rc.set_defaults(func=cmd_rewards_check)
    rc.intermixed = True
    ch = sub.add_parser("chat", help="talk to a checkpoint about images in the terminal (multi-turn, streaming)")
    ch.add_argument("checkpoint", help="a run directory (its last finished stage), a checkpoint directory or a hub id")
    ch.add_argument("--image", action="append", default=[], help="an image for the first message (repeat for more)")
    ch.add_argument("--max-new-tokens", type=int, default=256)
    ch.add_argument("--temperature", type=float, default=0.7, help="0 = greedy")
    ch.add_argument("--top-p", type=float, default=0.9)
    ch.add_argument("--top-k", type=int, default=50)
    ch.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ch.add_argument("--trust-remote-code", action="store_true", help="run code shipped in the model repository")
    ch.set_defaults(func=cmd_chat)

    x = sub.add_parser("export", help="a run's model as a Hugging Face folder (merged or LoRA) or GGUF, with a model card")
    x.add_argument("target", metavar="RUN_OR_CHECKPOINT", help="a run directory (its last finished stage) or a checkpoint")
    x.add_argument("--format", default="merged", help="merged (full weights), lora (PEFT adapters over the base), "
                   "gguf (llama.cpp, where its converter is installed)")
    x.add_argument("--dtype", help="bf16 or fp16 (default: the checkpoint's own)")
    x.add_argument("--out", required=True, help="a new folder (written complete or not at all)")
    x.add_argument("--push-to-hub", metavar="REPO", help="also upload the folder to this Hugging Face Hub repository")
    x.set_defaults(func=cmd_export)

    v = sub.add_parser("serve", help="an OpenAI-compatible API (/v1/chat/completions, /v1/models) over a checkpoint")
    v.add_argument("checkpoint", help="a run directory (its last finished stage), a checkpoint directory or a hub id")
    v.add_argument("--host", default="127.0.0.1", help="any address but loopback needs --api-key")
    v.add_argument("--port", type=int, default=8000)
    v.add_argument("--api-key", help="required from clients on every route (default: RRFT_STUDIO_API_KEY, else none)")
    v.add_argument("--allow-dir", action="append", default=[], help="a folder whose image files requests may name "
                   "(repeat for more); data URLs need none")
    v.add_argument("--max-queue", type=int, default=8, help="requests waiting or running at once; more get 429")
    v.add_argument("--context-length", type=int, help="prompt + max_tokens limit (default: the model's context)")
    v.add_argument("--model-name", help="the model id clients send (default: <run>/<stage> or the folder's name)")
    v.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    v.add_argument("--trust-remote-code", action="store_true", help="run code shipped in the model repository")
    v.set_defaults(func=cmd_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as e:
        if ranks.is_main():  # every rank of a launch raises it: say it once
            print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
