"""The record schema every task family shares, and the loader of real files in the layouts they ship in.

A record is ``id``, ``image`` (a path, or a list of paths: spatial's ``[initial, final]``), ``problem``,
``answer`` (``solution`` in RL-format files; an ``<answer>`` tag is stripped) and ``cot`` (training files
only). Files may be JSON (a list of records), JSONL, parquet, or a folder saved by ``datasets``
(``save_to_disk``); images may be paths or embedded bytes (written once into ``extract_dir``).

Image paths are relative to an image root, found per file:
1. the one given (``data.image_root`` for the training file, ``data.eval_image_root`` for test files);
2. the public dataset's layout: a file in ``<root>/train_jsons/`` has its images under
   ``<root>/images/train_images/``, one in ``<root>/test_jsons/`` under ``<root>/images/test_images/``;
3. the file's own folder (what the synthetic generators write).
The first of these under which the file's first record finds its images is used for the whole file; a record
whose image is missing there is an error naming the file, the record, the path tried and the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import random
import tempfile

from ..answers import answer_text, compose

PROMPT_STYLES = ("cot", "bare", "ans")  # CoT instruction, zero-shot instruction, the bare question (ANS-SFT)
TARGET_STYLES = ("cot", "ans")
LAYOUT = {"train_jsons": ("images", "train_images"), "test_jsons": ("images", "test_images")}
# Other names a user's own file may give a field (data.task=custom reads any of these).
ALIASES = {"problem": ("problem", "question"), "image": ("image", "images"), "answer": ("answer", "solution")}


class DataError(ValueError):
    """A problem with a data file: one line naming the file, the record and the fix."""


def target(record: dict, style: str = "cot", task: str = "") -> str:
    """The SFT assistant text: cot -> `<think>\\n{cot}\\n</think>\\n<answer>\\n{answer}\\n</answer>`;
    ans -> the answer alone. A CoT that already holds a <think> block (as released CoT files do) gives
    only its body, so tags are never nested."""
    answer = str(record["answer"]).strip()
    if style == "ans":
        return answer
    if style != "cot":
        raise ValueError(f"{task or 'target'}: unknown style {style!r}; use one of {', '.join(TARGET_STYLES)}")
    cot = str(record.get("cot") or "").strip()
    start, end = cot.find("<think>"), cot.find("</think>")
    if 0 <= start < end:
        cot = cot[start + len("<think>"): end].strip()
    if not cot:
        raise ValueError(f"{task or 'target'}: record {record.get('id', '?')!r} has no 'cot'; "
                         f"use style='ans' (ans_sft) or add a chain of thought")
    return compose(cot, answer)


def write_json_atomic(path: pathlib.Path, data) -> None:
    # JSON goes last and via rename, so a crash never leaves a JSON naming images not yet written.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def progress(n: int, what: str):
    """range(n) with a progress bar on stderr (one line, updated at most once a second); none for small n."""
    from tqdm.auto import tqdm

    return tqdm(range(n), desc=what, unit="sample", mininterval=1.0, disable=n < 100, leave=False)


def write(out_dir, n: int, seed: int, split: str, name: str, sample) -> pathlib.Path:
    """Write n records to out_dir/{split}.json and their images to out_dir/images/{split}/: the loop of every
    synthetic generator. `sample(rng)` draws one record from the seeded stream: (images, problem, answer, cot),
    images one PIL image, or a dict {part: image} of several (saved as {index}_{part}.png, listed in that order).

    Deterministic: the same (n, seed, sample) gives byte-identical JSON and PNGs. Records are drawn from one
    sequential stream, so the first m records of a size-n run equal a size-m run.
    """
    out = pathlib.Path(out_dir)
    (out / "images" / split).mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    records = []
    for i in progress(n, f"{name} {split}"):
        images, problem, answer, cot = sample(rng)
        parts = images if isinstance(images, dict) else {"": images}
        paths = [f"images/{split}/{i:06d}{'_' + part if part else ''}.png" for part in parts]
        for path, image in zip(paths, parts.values()):
            image.save(out / path, format="PNG")
        records.append({"id": f"{name}-{split}-{i:06d}", "image": paths if isinstance(images, dict) else paths[0],
                        "problem": problem, "answer": answer, "cot": cot})
    json_path = out / f"{split}.json"
    write_json_atomic(json_path, records)
    return json_path


# ---------------------------------------------------------------- reading files

def read_records(path: pathlib.Path) -> list:
    """The raw records of a JSON, JSONL or parquet file, or of a saved `datasets` folder."""
    path = pathlib.Path(path)
    if path.is_dir():
        if not (path / "dataset_info.json").is_file() and not (path / "state.json").is_file():
            raise DataError(f"{path}: a folder, but not one saved by datasets (no dataset_info.json); "
                            f"give a .json, .jsonl or .parquet file")
        from datasets import load_from_disk

        return [dict(row) for row in _with_raw_images(load_from_disk(str(path)))]
    if not path.is_file():
        raise DataError(f"{path}: file not found; check the path to the data file")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow's errors have no common base class worth naming
            raise DataError(f"{path}: not a readable parquet file ({' '.join(str(exc).split())[:200]})") from None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; save it as UTF-8 JSON, JSONL or parquet") from None
    if path.suffix == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}: line {n} is not valid JSON ({exc.msg}); each line must hold one record") from None
        return rows
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); the file must hold a JSON "
                        f"list of records (or use .jsonl for one record per line)") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: top level is {type(data).__name__}, not a list; the file must hold a JSON list of records")
    return data


def _with_raw_images(dataset):
    """A datasets.Dataset whose Image columns give {'bytes', 'path'} instead of decoded PIL images."""
    from datasets import Image, List

    for name, feature in dataset.features.items():
        if isinstance(feature, Image):
            dataset = dataset.cast_column(name, Image(decode=False))
        elif isinstance(feature, List) and isinstance(feature.feature, Image):
            dataset = dataset.cast_column(name, List(Image(decode=False)))
    return dataset


def _field(rec: dict, key: str, aliases: bool):
    for name in ALIASES[key] if aliases else (key, "solution") if key == "answer" else (key,):
        if rec.get(name) is not None:
            return rec[name]
    return None


# ---------------------------------------------------------------- image roots

def root_candidates(path: pathlib.Path, image_root: str | os.PathLike | None = None) -> list[pathlib.Path]:
    """Where a file's image paths may be relative to, in the order tried (see the module's docstring)."""
    path = pathlib.Path(path).resolve()
    out = [pathlib.Path(image_root).expanduser().resolve()] if image_root else []
    if path.parent.name in LAYOUT:
        out.append(path.parent.parent.joinpath(*LAYOUT[path.parent.name]))
    out.append(path.parent if path.is_file() else path)
    return list(dict.fromkeys(out))


def _paths(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _relative(value) -> list[str]:
    return [p for p in _paths(value) if isinstance(p, str) and p and not os.path.isabs(p)]


def choose_root(path: pathlib.Path, rows: list, image_root=None) -> pathlib.Path:
    """The first candidate root under which the first record with relative image paths finds them all."""
    candidates = root_candidates(path, image_root)
    first = next((_relative(_field(r, "image", True)) for r in rows if isinstance(r, dict)
                  and _relative(_field(r, "image", True))), None)
    if first:
        for root in candidates:
            if all((root / p).is_file() for p in first):
                return root
    return candidates[0]


def _fix(path: pathlib.Path) -> str:
    if path.resolve().parent.name in LAYOUT:
        sub = "/".join(LAYOUT[path.resolve().parent.name])
        return (f"unzip the dataset's images so that {path.resolve().parent.parent / sub} holds them, or set "
                f"data.image_root (data.eval_image_root for test files) to the folder the paths are relative to")
    return "set data.image_root (data.eval_image_root for test files) to the folder the image paths are relative to"


def _extract(blob: dict, extract_dir: pathlib.Path | None, where: str) -> str:
    """An embedded image ({'bytes': ..., 'path': ...}) written once under extract_dir, named by its content."""
    if extract_dir is None:
        raise DataError(f"{where}: the image is embedded in the file; this command reads image paths only")
    data = blob["bytes"]
    name = hashlib.sha256(data).hexdigest()[:20] + pathlib.Path(blob.get("path") or "x.png").suffix
    target = pathlib.Path(extract_dir) / name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return str(target)


def resolve_image(value, root: pathlib.Path, where: str, file: pathlib.Path | None = None, extract_dir=None,
                  check: bool = True):
    """A record's image field as absolute path(s); raises DataError naming what is missing and the fix."""
    paths = _paths(value)
    if not paths or not all((isinstance(p, str) and p) or (isinstance(p, dict) and p.get("bytes")) for p in paths):
        raise DataError(f"{where}: 'image' must be a path or a non-empty list of paths; fix the record")
    out = []
    for p in paths:
        if isinstance(p, dict):
            out.append(_extract(p, extract_dir, where))
            continue
        full = p if os.path.isabs(p) else os.path.normpath(os.path.join(root, p))
        if check and not os.path.isfile(full):
            raise DataError(f"{where}: image not found: {full}; {_fix(file) if file else 'check the path'}")
        out.append(full)
    return out if isinstance(value, (list, tuple)) else out[0]


# ---------------------------------------------------------------- records

def normalise(rec, i: int, path: pathlib.Path, root: pathlib.Path, aliases: bool = False, extract_dir=None,
              check_images: bool = True) -> dict:
    """One raw record -> id, problem, image (absolute), answer (tag stripped), cot; other keys kept."""
    where = f"{path}: record {i}" + (f" (id {rec.get('id')!r})" if isinstance(rec, dict) and "id" in rec else "")
    if not isinstance(rec, dict):
        raise DataError(f"{where}: is {type(rec).__name__}, not an object; each record must be a JSON object")
    values = {key: _field(rec, key, aliases) for key in ALIASES}
    for key in ("problem", "image"):
        if values[key] is None:
            names = " or ".join(f"'{n}'" for n in ALIASES[key]) if aliases else f"'{key}'"
            raise DataError(f"{where}: missing {names}; add it to the record")
    if values["answer"] is None:
        raise DataError(f"{where}: missing 'answer' (and no 'solution'); add the answer")
    answer = answer_text(values["answer"])
    if not answer:
        raise DataError(f"{where}: answer is empty; put the answer text in 'answer'")
    new = {k: v for k, v in rec.items() if k != "images" and not isinstance(v, (bytes, bytearray))}
    new.update(id=str(rec.get("id", f"{path.stem}-{i:06d}")), problem=str(values["problem"]),
               image=resolve_image(values["image"], root, where, path, extract_dir, check_images), answer=answer,
               cot=str(rec.get("cot") or ""))
    return new


def load(path, image_root=None, aliases: bool = False, extract_dir=None) -> list[dict]:
    """Read a data file into records with absolute image paths and a clean answer.

    ``image_root`` is tried first, then the dataset's layout rule, then the file's folder (module docstring).
    ``aliases`` also accepts ``question`` / ``images`` / ``solution`` (a user's own data). Image files are
    checked to exist, not opened. Any problem raises DataError, one line naming the file, record and fix.
    """
    path = pathlib.Path(path)
    rows = read_records(path)
    root = choose_root(path, rows, image_root)
    return [normalise(rec, i, path, root, aliases, extract_dir) for i, rec in enumerate(rows)]
