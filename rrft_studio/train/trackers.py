"""Experiment trackers beside the run directory: trackio, TensorBoard, Weights & Biases, MLflow.

`run.report_to` names them. Both trainers get it as TRL's `report_to`, so transformers' own callbacks log every
metric the trainer logs, to a tracker run named `<run>-<stage>` in the project `run.project`. `Bridge`, one more
callback, adds what those callbacks do not send: the resolved config, and GRPO's rollouts with their images as a
table where the tracker has tables (trackio, wandb; TensorBoard gets a text table and the images, MLflow a JSON
table). At the end of a run `log_report` writes the eval table, the paper's rows beside ours, to a tracker run
`<run>-eval`. The run directory itself is unchanged: metrics.jsonl and samples.jsonl are still written.

Where each tracker writes, so nothing leaves the machine unless asked:
- trackio: its local database (TRACKIO_DIR, default ~/.cache/huggingface/trackio); `trackio show` opens it.
- TensorBoard: <run>/tensorboard/<stage> (TENSORBOARD_LOGGING_DIR, where set, wins).
- wandb: offline, under <run>/wandb, unless WANDB_MODE is set (`wandb sync` uploads later).
- MLflow: MLFLOW_TRACKING_URI where set, else MLflow's local default; the experiment is run.project.

`check` runs before the run directory exists: a tracker that is not installed or cannot start is one ConfigError
line naming the fix, not a traceback at step 1.
"""

from __future__ import annotations

import importlib
import netrc
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from .. import config as config_mod
from .. import runs
from ..answers import completion_text
from ..config import Config, ConfigError

NAMES = ("trackio", "tensorboard", "wandb", "mlflow")
# What `import` proves a tracker is usable: transformers' TensorBoard callback writes through torch's writer.
MODULES = {"trackio": "trackio", "tensorboard": "torch.utils.tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
_SET_BY_US: set[str] = set()  # environment variables this process set, so a user's own value is never replaced


def active(cfg: Config) -> list[str]:
    return [name for name in cfg.run.report_to if name != "none"]


# ---------------------------------------------------------------- before the run

def check(cfg: Config) -> None:
    """Each tracker of run.report_to imports and can start here; else ConfigError with the fix."""
    for name in active(cfg):
        try:
            importlib.import_module(MODULES[name])
        except Exception as e:  # a broken install (a missing dependency of the tracker) reads the same to the user
            why = "is not installed" if isinstance(e, ModuleNotFoundError) else f"does not import ({type(e).__name__}: {e})"
            extra = " (or pip install 'rrft-studio[trackers]')" if name in ("trackio", "tensorboard") else ""
            raise ConfigError(f"run.report_to: {name} {why}: pip install {name}{extra}, or drop it from "
                              "run.report_to") from None
        _check_start(name)


def _check_start(name: str) -> None:
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if name == "trackio":
        if (os.environ.get("TRACKIO_SPACE_ID") or os.environ.get("TRACKIO_SERVER_URL")) and offline:
            raise ConfigError("run.report_to: trackio is set to log to a Space or server (TRACKIO_SPACE_ID / "
                              "TRACKIO_SERVER_URL) but HF_HUB_OFFLINE=1: unset them to log locally")
        from trackio.utils import TRACKIO_DIR

        _check_writable(Path(TRACKIO_DIR), "trackio", "TRACKIO_DIR")
    elif name == "wandb":
        mode = os.environ.get("WANDB_MODE", "")
        if mode in ("online", "run") and not _wandb_key():
            raise ConfigError("run.report_to: wandb with WANDB_MODE=online needs a login: run `wandb login` "
                              "(or set WANDB_API_KEY), or unset WANDB_MODE to log offline")
    elif name == "mlflow":
        uri = os.environ.get("MLFLOW_TRACKING_URI", "")
        if uri.startswith(("http://", "https://")) and not _reachable(uri):
            raise ConfigError(f"run.report_to: mlflow cannot reach MLFLOW_TRACKING_URI={uri}: start that server, "
                              "or unset MLFLOW_TRACKING_URI to log to a local folder")


def _check_writable(folder: Path, name: str, variable: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        ok = os.access(folder, os.W_OK)
    except OSError:
        ok = False
    if not ok:
        raise ConfigError(f"run.report_to: {name} cannot write to '{folder}': set {variable} to a writable folder")


def _wandb_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def _reachable(uri: str) -> bool:
    """A TCP connection to the user's own tracking server, nothing more (no request is sent)."""
    parsed = urlparse(uri)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)), 3):
            return True
    except OSError:
        return False


def _setdefault_env(key: str, value: str) -> None:
    """Set a tracker's environment variable unless the user set it (a variable we set earlier is ours to change)."""
    if key in os.environ and key not in _SET_BY_US:
        return
    os.environ[key] = value
    _SET_BY_US.add(key)


def report_args(cfg: Config, output_dir: Path) -> dict:
    """The tracker part of a stage's TRL args. output_dir is <run>/checkpoints/<stage>. The environment is set here,
    before the trainer exists, because transformers' tracker callbacks read it when they are built."""
    names = active(cfg)
    run_dir, stage = runs.stage_of(output_dir)
    if "tensorboard" in names:
        _setdefault_env("TENSORBOARD_LOGGING_DIR", str(runs.tracker_dir(run_dir, "tensorboard", stage)))
    if "wandb" in names:
        _setdefault_env("WANDB_MODE", "offline")
        _setdefault_env("WANDB_DIR", str(run_dir))
        _setdefault_env("WANDB_PROJECT", cfg.run.project)
    if "mlflow" in names:
        _setdefault_env("MLFLOW_EXPERIMENT_NAME", cfg.run.project)
    return {"report_to": names, "run_name": f"{run_dir.name}-{stage}", "project": cfg.run.project}


# ---------------------------------------------------------------- during a stage

def attach(trainer, cfg: Config, run_dir: Path, stage: str) -> None:
    """Add the Bridge to a trainer built with report_args (nothing when no tracker is configured)."""
    if active(cfg):
        from transformers import TrainerCallback  # not at the top: `check` runs before it loads

        class Callback(Bridge, TrainerCallback):
            pass

        trainer.add_callback(Callback(cfg, run_dir, stage, trainer))


class Bridge:
    """The callback `attach` adds (with transformers' TrainerCallback as its base). Sends the resolved config when
    a stage starts and GRPO's rollouts at each logged step. It runs after transformers' tracker callbacks (added
    later), so their runs are open when it writes."""

    def __init__(self, cfg: Config, run_dir: Path, stage: str, trainer):
        self.cfg, self.run_dir, self.stage, self.trainer = cfg, Path(run_dir), stage, trainer
        self.names = active(cfg)
        self.rollout_step = -1

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        tree = {"rrft_studio": config_mod.to_dict(self.cfg)}
        for name in self.names:
            _log_config(name, tree, self._tb_writer(), self.cfg)

    def on_log(self, args, state, control, logs=None, **kwargs):
        every = self.cfg.grpo.samples_every
        step = state.global_step
        if self.stage != "grpo" or not every or step % every or step == self.rollout_step \
                or not state.is_world_process_zero:
            return
        self.rollout_step = step  # the end-of-training summary logs the last step again
        rows = rollout_rows(self.trainer._logs)
        if rows:
            for name in self.names:
                _log_rollouts(name, rows, step, self._tb_writer())

    def _tb_writer(self):
        from transformers.integrations import TensorBoardCallback

        for callback in self.trainer.callback_handler.callbacks:
            if isinstance(callback, TensorBoardCallback):
                return callback.tb_writer
        return None


def rollout_rows(logs: dict) -> list[dict]:
    """GRPOTrainer's last rollout batch (its `_logs`, what TRL's own completion tables read) as one row per
    completion: prompt, completion, each reward, advantage, and the prompt's images (PIL)."""
    completions = list(logs["completion"])
    images = list(logs.get("images") or [])
    rewards = {k: list(v) for k, v in logs["rewards"].items()}
    rows = []
    for i, completion in enumerate(completions):
        row = {"prompt": _prompt_text(logs["prompt"][i]), "completion": completion_text(completion)}
        row.update({k: float(v[i]) for k, v in rewards.items() if i < len(v)})
        row["advantage"] = float(logs["advantages"][i])
        row["images"] = list(images[i]) if i < len(images) and images[i] else []
        rows.append(row)
    return rows


def _prompt_text(prompt) -> str:
    """The user's text of a conversational prompt (the images are their own column)."""
    if isinstance(prompt, str):
        return prompt
    texts = [part.get("text", "") for message in prompt for part in
             (message.get("content") if isinstance(message.get("content"), list) else [{"text": message.get("content", "")}])
             if isinstance(part, dict)]
    return "\n".join(t for t in texts if t)


def _log_config(name: str, tree: dict, tb_writer, cfg: Config) -> None:
    if name == "trackio":
        import trackio

        trackio.config.update(tree, allow_val_change=True)
    elif name == "wandb":
        import wandb

        if wandb.run is not None:
            wandb.config.update(tree, allow_val_change=True)
    elif name == "tensorboard" and tb_writer is not None:
        tb_writer.add_text("rrft_studio/config", "```yaml\n" + config_mod.dump(cfg) + "```")
    elif name == "mlflow":
        import mlflow

        if mlflow.active_run() is not None:
            mlflow.log_dict(tree, "rrft_studio_config.json")


def _log_rollouts(name: str, rows: list[dict], step: int, tb_writer) -> None:
    text_rows = [{k: v for k, v in r.items() if k != "images"} for r in rows]
    if name in ("trackio", "wandb"):
        backend = importlib.import_module(name)
        if name == "wandb" and backend.run is None:
            return
        table = [{"step": step, **t, "image": [backend.Image(img) for img in r["images"]]}
                 for t, r in zip(text_rows, rows)]
        backend.log({"rollouts": _table(backend, table)})
    elif name == "tensorboard" and tb_writer is not None:
        tb_writer.add_text("rollouts", markdown_table(text_rows), step)
        firsts = list({r["prompt"]: r["images"][0] for r in rows if r["images"]}.values())  # one per prompt
        for i, image in enumerate(firsts):
            tb_writer.add_image(f"rollouts/image_{i}", _hwc(image), step, dataformats="HWC")
        tb_writer.flush()
    elif name == "mlflow":
        import mlflow

        if mlflow.active_run() is not None:
            columns = {k: [r.get(k) for r in text_rows] for k in text_rows[0]}
            mlflow.log_table(columns, artifact_file=f"rollouts/step_{step:06d}.json")


def _table(backend, rows: list[dict]):
    """A trackio or wandb Table from row dicts (a DataFrame, as TRL builds its completion tables for both)."""
    import pandas as pd

    return backend.Table(dataframe=pd.DataFrame(rows))


def _hwc(image):
    import numpy as np

    return np.asarray(image.convert("RGB"))  # (H, W, 3) uint8


def markdown_table(rows: list[dict]) -> str:
    if not rows:
        return ""
    keys = list(rows[0])

    def cell(v) -> str:
        text = f"{v:.3f}" if isinstance(v, float) else str(v)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(keys) + " |", "|---" * len(keys) + "|"]
    lines += ["| " + " | ".join(cell(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- after the run

def parse_markdown_table(text: str) -> tuple[list[str], list[list[str]]]:
    """(columns, rows) of the pipe table report.results_table writes."""
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("|")]
    split = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    body = [row for row in split[1:] if not all(set(c) <= set("-: ") for c in row)]
    return (split[0] if split else []), body


def log_report(cfg: Config, run_dir: Path, report: dict) -> None:
    """The eval table (ours and the paper's rows) and the headline figures, to a tracker run `<run>-eval`."""
    names = active(cfg)
    if not names or not report.get("table"):
        return
    columns, rows = parse_markdown_table(report["table"])
    scalars = {f"eval/{k}": float(report[k]) for k in ("chance", "accuracy_base", "accuracy_sft", "accuracy_grpo",
                                                        "format_reward_grpo") if report.get(k) is not None}
    tree, name = {"rrft_studio": config_mod.to_dict(cfg)}, f"{Path(run_dir).name}-eval"
    for tracker in names:
        if tracker in ("trackio", "wandb"):
            backend = importlib.import_module(tracker)
            extra = {"dir": str(run_dir)} if tracker == "wandb" else {"resume": "allow"}
            backend.init(project=cfg.run.project, name=name, config=tree, **extra)
            backend.log({"eval/table": _table(backend, [dict(zip(columns, r)) for r in rows]), **scalars})
            backend.finish()
        elif tracker == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            folder = os.environ.get("TENSORBOARD_LOGGING_DIR") if "TENSORBOARD_LOGGING_DIR" not in _SET_BY_US else None
            writer = SummaryWriter(log_dir=folder or str(runs.tracker_dir(run_dir, "tensorboard", "eval")))
            writer.add_text("eval/table", report["table"])
            for key, value in scalars.items():
                writer.add_scalar(key, value, 0)
            writer.close()
        elif tracker == "mlflow":
            import mlflow

            with mlflow.start_run(run_name=name):
                mlflow.log_dict(tree, "rrft_studio_config.json")
                mlflow.log_table({c: [r[i] for r in rows] for i, c in enumerate(columns)}, artifact_file="eval_table.json")
                mlflow.log_text(report["table"], "eval_table.md")
                mlflow.log_metrics({k.replace("/", "_"): v for k, v in scalars.items()})
    print(f"trackers: eval table sent to {', '.join(names)} (run {name}, project {cfg.run.project})", flush=True)
