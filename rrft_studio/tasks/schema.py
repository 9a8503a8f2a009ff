"""What every task family shares about the Reason-RFT record schema: the loader of its JSON files, the
atomic writer the generators use, and the SFT target text built from a record."""

from __future__ import annotations

import json
import os
import pathlib
import re
import tempfile

STYLES = ("cot", "ans")
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


def target(record: dict, style: str, task: str) -> str:
    """The SFT assistant text: cot -> `<think>\\n{cot}\\n</think>\\n<answer>\\n{answer}\\n</answer>`;
    ans -> the answer alone. A CoT that already holds a <think> block (as released CoT files do) gives
    only its body, so tags are never nested."""
    answer = str(record["answer"]).strip()
    if style == "ans":
        return answer
    if style != "cot":
        raise ValueError(f"{task}.target: unknown style {style!r}; use one of {', '.join(STYLES)}")
    cot = str(record.get("cot") or "").strip()
    match = _THINK.search(cot)
    cot = match.group(1).strip() if match else cot
    if not cot:
        raise ValueError(f"{task}.target: record {record.get('id', '?')!r} has no 'cot'; "
                         f"use style='ans' or add a chain of thought")
    return f"<think>\n{cot}\n</think>\n<answer>\n{answer}\n</answer>"


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


_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def _clean_answer(value) -> str:
    # Same convention as the accuracy reward: the text inside the first answer tag, stripped.
    text = str(value)
    match = _ANSWER_TAG.search(text)
    return (match.group(1) if match else text).strip()


def _resolve_image(value, root: pathlib.Path, where: str):
    paths = value if isinstance(value, list) else [value]
    if not paths or not all(isinstance(p, str) and p for p in paths):
        raise ValueError(f"{where}: 'image' must be a path string or a non-empty list of path strings; "
                         f"fix the record")
    resolved = []
    for p in paths:
        full = p if os.path.isabs(p) else os.path.abspath(os.path.join(root, p))
        if not os.path.isfile(full):
            raise ValueError(f"{where}: image file not found: {full}; pass image_root= "
                             f"pointing at the folder the image paths are relative to")
        resolved.append(full)
    return resolved if isinstance(value, list) else resolved[0]


def _read_records(path: pathlib.Path) -> list:
    if not path.is_file():
        raise ValueError(f"{path}: file not found; check the path to the Reason-RFT JSON file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        detail = " ".join(str(exc).split())
        raise ValueError(f"{path}: not valid JSON ({detail}); the file must hold a JSON list of records")
    if not isinstance(data, list):
        raise ValueError(f"{path}: top level is {type(data).__name__}, not a list; "
                         f"the file must hold a JSON list of records")
    return data


def load(json_path, image_root=None) -> list[dict]:
    """Read a Reason-RFT JSON file into records with absolute image paths and a clean answer.

    Accepts ``answer`` or (when absent) ``solution``; strips an ``<answer>`` tag; ``image`` may be
    a string or a list of strings; ``cot`` defaults to "". Image files are checked to exist but not
    opened. Any problem raises ValueError with one line naming the file, the record and the fix.
    """
    path = pathlib.Path(json_path)
    root = pathlib.Path(image_root) if image_root is not None else path.parent
    out = []
    for i, rec in enumerate(_read_records(path)):
        where = f"{path}: record {i}" + (f" (id {rec.get('id')!r})" if isinstance(rec, dict) and
                                          "id" in rec else "")
        if not isinstance(rec, dict):
            raise ValueError(f"{where}: is {type(rec).__name__}, not an object; each record must be a "
                             f"JSON object")
        for key in ("problem", "image"):
            if rec.get(key) is None:
                raise ValueError(f"{where}: missing '{key}'; add it to the record")
        raw = rec.get("answer") if rec.get("answer") is not None else rec.get("solution")
        if raw is None:
            raise ValueError(f"{where}: missing 'answer' (and no 'solution'); add the answer")
        answer = _clean_answer(raw)
        if not answer:
            raise ValueError(f"{where}: answer is empty; put the answer text in 'answer'")
        new = dict(rec)
        new.update(id=str(rec.get("id", f"{path.stem}-{i:06d}")), problem=str(rec["problem"]),
                   image=_resolve_image(rec["image"], root, where), answer=answer,
                   cot=str(rec.get("cot") or ""))
        out.append(new)
    return out
