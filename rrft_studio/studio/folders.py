"""The folders the studio reads and writes on a user's behalf, and the checks that keep every path a form field
can name inside them.

The operator names the folders when starting the studio (app.py): runs, presets, data, models, cache, exports
(by default `exports/` inside the runs folder), and optionally a folder of reward modules. A path typed in the
Train tab (`data.train_file`, `data.eval_files`, `data.image_root`, `data.eval_image_root`, `data.root`,
`run.cache_dir`, `run.runs_dir`, `model.name` when it is a folder), the Data tab's output folder, the Export
tab's new folder, and the checkpoint Chat, Compare, Export or Serve loads are resolved as the CLI would read them
(relative to the studio's working directory, `~` expanded, links followed) and refused, in one line, unless they
land in the folder meant for them. The check comes before anything touches the path, so a refusal says nothing
about what lies outside.

Custom `module:function` rewards are checked without importing anything: the module must be a file in the
rewards folder, bind that name at its top level, and not share its name with an installed module (the
training process appends the folder to its import path, so an installed module of the same name would win).
Without a rewards folder the studio accepts only the built-in rewards.
"""

from __future__ import annotations

import ast
import importlib.machinery
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from .. import config, rewards, runs
from ..config import ConfigError

# config key -> the folders its path may name
CONFIG_PATHS = {
    "data.train_file": ("data",),
    "data.eval_files": ("data",),
    "data.image_root": ("data",),
    "data.eval_image_root": ("data",),
    "data.root": ("data",),
    "run.cache_dir": ("cache",),
}
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")
MODULE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
BASE_PREFIX = "base:"
DATA_DIR = "~/.cache/rrft-studio/data"  # the data folder by default: outside any checkout the studio runs in
EXPORTS = "exports"  # the exports folder by default: this folder of the runs folder


@dataclass(frozen=True)
class Folders:
    runs: Path
    presets: Path
    data: Path
    cache: Path
    models: Path | None = None
    rewards: Path | None = None
    cwd: Path = Path(".")
    exports: Path | None = None

    @classmethod
    def create(cls, runs, presets="presets", data=DATA_DIR, cache=None, models=None, rewards=None,
               cwd=None, exports=None) -> Folders:
        """Every folder resolved (relative ones against cwd, the studio's working directory). Exports go to
        `exports/` in the runs folder unless named: beside the runs they come from, where the operator already
        gave the studio room for weights, and never a run themselves (no config.yaml)."""
        cwd = Path(cwd or Path.cwd()).resolve()

        def absolute(p):
            return None if p is None else (cwd / Path(p).expanduser()).resolve()

        return cls(absolute(runs), absolute(presets), absolute(data), absolute(cache or config.Run().cache_dir),
                   absolute(models), absolute(rewards), cwd, absolute(exports) or absolute(runs) / EXPORTS)

    def resolve(self, value: str) -> Path:
        """A path as the CLI, started in the studio's working directory, would read it."""
        return (self.cwd / Path(value).expanduser()).resolve()

    def confine(self, value: str, what: str, kinds: tuple[str, ...]) -> Path:
        """The resolved path, or ConfigError unless it lies in one of the named folders."""
        path = self.resolve(value)
        roots = [(kind, getattr(self, kind)) for kind in kinds if getattr(self, kind) is not None]
        if any(path.is_relative_to(root) for _, root in roots):
            return path
        where = " or ".join(f"the {kind} folder {root}" for kind, root in roots) or "a folder given at start"
        raise ConfigError(f"{what}: '{value}' is outside the studio's folders: use a path in {where}")

    # -- a preset edited in the Train tab
    @staticmethod
    def merged(preset: Path, overrides: list[str]) -> config.Config:
        """The preset and the overrides merged, not validated (validation reads the files they name)."""
        cfg = config.Config()
        config._apply(cfg, config.read_preset(preset))
        for text in overrides:
            config._apply(cfg, config.parse_override(text))
        config.apply_method(cfg)
        return cfg

    def check_config(self, cfg: config.Config) -> None:
        """Every path and reward a merged config names. run.cache_dir left at its default is allowed: the
        launcher then points it at the cache folder."""
        for key, kinds in CONFIG_PATHS.items():
            value = config.get(cfg, key)
            for item in value if isinstance(value, list) else [value]:
                if item and not (key == "run.cache_dir" and item == config.Run().cache_dir):
                    self.confine(item, key, kinds)
        if cfg.run.runs_dir != config.Run().runs_dir and self.resolve(cfg.run.runs_dir) != self.runs:
            raise ConfigError(f"run.runs_dir: the studio launches runs into its runs folder {self.runs} only: "
                              "drop run.runs_dir")
        self.check_model(cfg.model.name, "model.name")
        if "grpo" in cfg.run.stages:
            for name in cfg.grpo.rewards:
                self.check_reward(name)

    # -- models and checkpoints
    def check_model(self, value: str, what: str) -> None:
        """'tiny', a hub id, or a folder in the models or runs folder."""
        if value == "tiny":
            return
        if value.startswith((".", "/", "~")) or "\\" in value or self.resolve(value).exists():
            self.confine(value, what, ("models", "runs"))
        elif not HUB_ID.match(value) or ".." in value:
            raise ConfigError(f"{what}: '{value}' is neither a hub id (org/name) nor a folder in the models or runs folder")

    def checkpoint(self, value: str) -> str:
        """A checkpoint Chat or Compare may load: a run's base model (base:RUN), a checkpoint in the runs or
        models folder, or a hub id. ConfigError otherwise."""
        value = (value or "").strip()
        if value.startswith(BASE_PREFIX):
            run = self.confine(value[len(BASE_PREFIX):], "checkpoint", ("runs",))
            if not runs.is_run(run):
                raise ConfigError(f"checkpoint: '{value}' is not a run in {self.runs}")
            return value
        self.check_model(value, "checkpoint")
        return value

    # -- rewards
    def check_reward(self, name: str) -> None:
        """A built-in reward, or module:function from the rewards folder; nothing is imported."""
        if ":" not in name:
            try:
                rewards.resolve(name)  # a built-in, or an error listing them (imports nothing)
            except ValueError as e:
                raise ConfigError(f"grpo.rewards: {e}") from None
            return
        builtin = ", ".join(sorted(rewards.REWARDS))
        if self.rewards is None:
            raise ConfigError(f"grpo.rewards: '{name}' is user code, which the studio runs only when started with "
                              f"--rewards-dir FOLDER: use a built-in reward ({builtin})")
        module, _, attr = name.partition(":")
        if not MODULE.match(module) or not MODULE.match(attr):
            raise ConfigError(f"grpo.rewards: '{name}': write module:function, e.g. my_rewards:length_reward")
        parts = module.split(".")
        base = self.rewards.joinpath(*parts)
        found = [p.resolve() for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()]
        if not found or not found[0].is_relative_to(self.rewards):
            raise ConfigError(f"grpo.rewards: '{name}': no module {module} in the rewards folder {self.rewards}")
        if _importable_elsewhere(parts[0], self.rewards, self.cwd):
            raise ConfigError(f"grpo.rewards: '{name}': '{parts[0]}' is also an installed module's name: "
                              "rename the file in the rewards folder")
        if attr.split(".")[0] not in _top_level_names(found[0]):
            raise ConfigError(f"grpo.rewards: '{name}': {found[0].name} defines no '{attr.split('.')[0]}'")


def _importable_elsewhere(top: str, folder: Path, cwd: Path) -> bool:
    """Whether a top-level module name is found outside the folder (a path search: nothing is imported)."""
    if top in sys.builtin_module_names:
        return True
    paths = [str(cwd), *(p or str(cwd) for p in sys.path)]
    others = [p for p in paths if Path(p).resolve() != folder]
    return importlib.machinery.PathFinder.find_spec(top, others) is not None


def _top_level_names(path: Path) -> set[str]:
    try:
        tree = ast.parse(path.read_text())
    except (SyntaxError, UnicodeDecodeError, OSError) as e:
        raise ConfigError(f"grpo.rewards: {path.name} is not readable Python: {e}") from None
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names
