"""`rrft-studio data check PATH`: what a data file (or the whole public dataset) holds, before GPU hours go into it.

Per file: records, records that do not load (missing fields, empty answers), images missing or unreadable
(the first few and a count; every image is opened, not only looked up), image sizes, answer kinds (letter,
number, function calls, other), the multiple-choice share (structure perception's rule: the answer is one of
A-D), and token lengths through the model's tokenizer: prompt text, image tokens after the configured resize,
the CoT target, with how many samples exceed the configured limits. Problems are printed one line per kind
and make the command exit 2.

    rrft-studio data check ~/data/Reason-RFT-CoT-Dataset                    # every task's files, by layout
    rrft-studio data check ~/data/Reason-RFT-CoT-Dataset --task spatial     # one task's train and test files
    rrft-studio data check my_data.jsonl --task custom [preset] [key=value]  # a file, with a preset's limits
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from . import data, tasks
from .config import Config, ConfigError
from .tasks import checks, schema

SHOWN = 3  # problems listed by name per kind; the rest are counted
_CALL = re.compile(r"\b\w+\(\s*\w+\s*,\s*'?\w+'?\s*\)")


@dataclass
class Report:
    path: Path
    task: str
    split: str
    records: int = 0
    image_root: Path | None = None
    problems: dict[str, list[str]] = field(default_factory=dict)  # kind -> examples (all of them counted)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    answers: dict[str, int] = field(default_factory=dict)
    choice: int = 0
    tokens: dict[str, list[int]] = field(default_factory=dict)
    limits: dict[str, tuple[str, int]] = field(default_factory=dict)  # token kind -> (config key, limit)
    tokenizer: str = ""
    notes: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list, repr=False)
    texts: list[str] = field(default_factory=list, repr=False)  # prompts and CoT targets, for the token counts
    targets: list[str] = field(default_factory=list, repr=False)

    def problem(self, kind: str, example: str) -> None:
        self.problems.setdefault(kind, []).append(example)


def answer_kind(answer: str) -> str:
    if answer.strip() in ("A", "B", "C", "D"):
        return "letter"
    if checks.as_number(answer.strip()) is not None or re.fullmatch(r"-?\d+\s*/\s*\d+", answer.strip()):
        return "number"
    if _CALL.search(answer):
        return "function calls"
    return "other"


def files(path: Path, task: str | None) -> list[tuple[Path, str, str]]:
    """(file, task, split) to check: a dataset root's files by its layout, or the one file given."""
    path = Path(path).expanduser()
    if path.is_dir() and ((path / "train_jsons").is_dir() or (path / "test_jsons").is_dir()):
        names = [task] if task else list(tasks.SYNTHETIC)
        out = []
        for name in names:
            family = tasks.get(name)
            if not family.dataset:
                raise ConfigError(f"--task {name}: the public dataset has no {name} files; check a file instead")
            for split, file in family.dataset.items():
                folder = "train_jsons" if split == "train" else "test_jsons"
                out.append((path / folder / file, name, split))
        if not task:  # the optional training sets (GeoQA, ScienceQA, ...) go through the custom task
            known = {p.name for p, _, _ in out}
            out += [(p, "custom", "train") for p in sorted((path / "train_jsons").glob("*.json")) if p.name not in known]
        return out
    if path.is_dir() and not (path / "dataset_info.json").is_file() and any(path.glob("*.json")):
        # a folder `data generate` wrote: one <split>.json per split beside its images
        return [item for file in sorted(path.glob("*.json")) for item in files(file, task)]
    task_split = (task, "train") if task else generated(path) or ("custom", "train")
    return [(path, *task_split)]


def generated(path: Path) -> tuple[str, str] | None:
    """(task, split) of a file the synthetic generators wrote (`rrft-studio data generate`), read from its first
    record's id (<task>-<split>-<number>); None for any other file."""
    if path.suffix != ".json" or not path.is_file():
        return None
    try:
        with open(path, encoding="utf-8") as f:
            head = f.read(4096)
    except (OSError, UnicodeDecodeError):
        return None
    match = re.search(r'"id"\s*:\s*"([a-z_]+)-([a-z]+)-\d+"', head)
    if not match or match.group(1) not in tasks.SYNTHETIC:
        return None
    return match.group(1), match.group(2)


def _tokenizer(cfg: Config, corpus: list[str]):
    """(the configured model's tokenizer or None, its description). The tiny model's tokenizer is trained on
    the checked texts; a hub model that is not downloaded here leaves the token counts out, with the reason."""
    from . import models

    try:
        processor = models.load_processor(models.source(cfg, corpus[:2000] if cfg.model.name == "tiny" else None),
                                          cfg.sft.max_pixels, cfg.model.trust_remote_code)
        return getattr(processor, "tokenizer", processor), cfg.model.name
    except Exception as e:  # offline hub ids, gated models: the check goes on without token counts
        return None, f"{cfg.model.name} (not loaded, token counts left out: {' '.join(str(e).split())[:120]})"


def count_tokens(report: Report, tokenizer, cfg: Config) -> None:
    """Prompt, CoT target and whole-sample token lengths, and the limits they are held against."""

    def count(batch: list[str]) -> list[int]:
        return [len(ids) for ids in tokenizer(batch, add_special_tokens=False)["input_ids"]]

    prompt = [n + data.TEMPLATE_TOKENS for n in count(report.texts)]
    report.tokens["prompt"] = prompt
    if any(report.targets):
        target = count(report.targets)
        report.tokens["target"] = [n for n, t in zip(target, report.targets) if t]
        report.tokens["whole sample"] = [p + i + t for p, i, t in zip(prompt, report.tokens["image"], target)]
        report.limits["whole sample"] = ("sft.max_length", cfg.sft.max_length)
        report.limits["target"] = ("grpo.max_completion_length", cfg.grpo.max_completion_length)
    for kind, (key, limit) in report.limits.items():
        values = report.tokens[kind] if kind != "target" else target
        for record_id, n in zip(report.ids, values):
            if n > limit:
                report.problem(f"over {key}={limit}", f"{report.path.name}: {record_id} ({n} {kind} tokens)")


def check_file(path: Path, task: str, split: str, cfg: Config, needs_cot: bool = False) -> Report:
    """Read one file as training would, open every image, classify the answers; token counts come after."""
    from PIL import Image

    report = Report(path, task, split)
    if not path.exists():
        report.problem("missing file", str(path))
        return report
    try:
        raw = schema.read_records(path)
    except schema.DataError as e:
        report.problem("unreadable file", str(e))
        return report
    report.records = len(raw)
    given = cfg.data.image_root if split == "train" else cfg.data.eval_image_root
    report.image_root = root = schema.choose_root(path, raw, given or None)
    family = tasks.get(task)
    rows = []
    for i, rec in enumerate(raw):
        try:
            rows.append(schema.normalise(rec, i, path, root, aliases=task == "custom", check_images=False))
        except schema.DataError as e:
            report.problem("bad record", str(e).split(": ", 1)[-1])
    image_counts = []
    for i in schema.progress(len(rows), f"check {path.name}"):
        r = rows[i]
        n_image = 0
        for p in data.images_of(r):
            try:
                with Image.open(p) as image:
                    image.load()  # decodes: a truncated file fails here, not mid-training
                    w, h = image.size
            except FileNotFoundError:
                report.problem("missing image", f"{r['id']}: {p}")
                continue
            except Exception as e:  # PIL raises many kinds for corrupt files
                report.problem("unreadable image", f"{r['id']}: {p} ({type(e).__name__})")
                continue
            report.sizes.append((w, h))
            n_image += data.image_tokens(h, w, cfg.sft.max_pixels)
        image_counts.append(n_image)
        kind = answer_kind(r["answer"])
        report.answers[kind] = report.answers.get(kind, 0) + 1
        report.choice += kind == "letter"
        report.ids.append(r["id"])
        report.texts.append(data.prompt_of(family, r, "cot", cfg, split))
        report.targets.append(schema.target(r, "cot") if r.get("cot") else "")
    report.tokens["image"] = image_counts
    if split == "train" and rows and not any(r.get("cot") for r in rows):
        note = "no record has a 'cot': CoT-SFT cannot train on it (method=ans_sft or rft_zero can)"
        report.notes.append(note)
        if "sft" in cfg.run.stages and cfg.sft.style == "cot" and needs_cot:
            report.problem("no cot", f"{path.name}: {note}")
    return report


def _spread(values: list[int]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"median {statistics.median(ordered):.0f}, p95 {p95}, max {ordered[-1]}"


def render(report: Report) -> str:
    """The report of one file as text: a header line, then indented facts."""
    lines = [f"{report.path} ({report.task}, {report.split}): {report.records:,} records"]
    if report.image_root:
        found = len(report.sizes)
        missing = len(report.problems.get("missing image", []))
        broken = len(report.problems.get("unreadable image", []))
        lines.append(f"  images under {report.image_root}: {found:,} read, {missing:,} missing, {broken:,} unreadable")
    if report.sizes:
        areas = sorted(report.sizes, key=lambda s: s[0] * s[1])
        lines.append(f"  image sizes: smallest {areas[0][0]}x{areas[0][1]}, median "
                     f"{areas[len(areas) // 2][0]}x{areas[len(areas) // 2][1]}, largest {areas[-1][0]}x{areas[-1][1]}")
    if report.answers:
        kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(report.answers.items(), key=lambda kv: -kv[1]))
        total = sum(report.answers.values())
        lines.append(f"  answers: {kinds}; multiple choice (answer A-D) {report.choice:,} of {total:,}")
    for kind in ("prompt", "image", "target", "whole sample"):
        if kind in report.tokens:
            values = report.tokens[kind]
            line = f"  {kind} tokens: {_spread(values)}"
            if kind in report.limits:
                key, limit = report.limits[kind]
                line += f"; {sum(v > limit for v in values):,} over {key}={limit}"
            lines.append(line)
    if report.tokenizer:
        lines.append(f"  tokens counted with: {report.tokenizer}")
    lines += [f"  note: {note}" for note in report.notes]
    return "\n".join(lines)


FIXES = {
    "missing file": "the dataset's files belong in train_jsons/ and test_jsons/; check the path",
    "unreadable file": "the file must be a JSON list, JSONL, parquet or a saved datasets folder",
    "bad record": "fix or drop these records",
    "missing image": "unzip the images into images/train_images/ and images/test_images/, or set "
                     "data.image_root / data.eval_image_root",
    "unreadable image": "re-download or re-extract these images",
    "no cot": "use method=ans_sft or method=rft_zero, or add chains of thought",
}


def problem_lines(reports: list[Report]) -> list[str]:
    """One line per kind of problem, over all files: the count, the first few, the fix."""
    kinds: dict[str, list[str]] = {}
    for r in reports:
        for kind, examples in r.problems.items():
            named = kind in ("missing image", "unreadable image", "bad record")
            kinds.setdefault(kind, []).extend(f"{r.path.name}: {e}" if named else e for e in examples)
    out = []
    for kind, examples in kinds.items():
        n = len(examples)
        first = "; ".join(examples[:SHOWN]) + (f"; ... {n - SHOWN:,} more" if n > SHOWN else "")
        label = kind + "s" if n != 1 and kind.endswith(("image", "record", "file")) else kind
        fix = FIXES.get(kind, "shorten them or raise the limit")
        out.append(f"{n:,} {label}: {first} -> {fix}")
    return out


def run(path: Path, task: str | None, cfg: Config, tokens: bool = True,
        needs_cot: bool = False) -> tuple[list[Report], str, list[str]]:
    """Check every file under `path`: (reports, the printed text, one line per problem kind). needs_cot: the
    config (a preset the user named) trains CoT-SFT, so a training file without CoT is a problem."""
    reports, tokenizer, name = [], None, ""
    for file, task_name, split in files(path, task):
        cfg.data.task = task_name
        report = check_file(file, task_name, split, cfg, needs_cot)
        if tokens and report.texts:
            if not name:  # the first file with records decides (the tiny model's tokenizer learns from it)
                tokenizer, name = _tokenizer(cfg, [t + "\n" + g for t, g in zip(report.texts, report.targets)])
            if tokenizer is not None:
                count_tokens(report, tokenizer, cfg)
            report.tokenizer = name
        reports.append(report)
    return reports, "\n".join(render(r) for r in reports), problem_lines(reports)
