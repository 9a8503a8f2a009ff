"""A miniature of the public Reason-RFT dataset as it unpacks, for the loader and `data check` tests.

    Reason-RFT-CoT-Dataset/
      images/train_images/<family>/...   images/test_images/<family>/...
      train_jsons/A1-Spatial-Transformation-train-60k-cot.json  A2-...  A3-...  GeoQA-train-1k-cot.json
      test_jsons/Visual-Counting-{id,ood}-test-1k.json  Structure-Perception-{id-test-820,ood-test-800}.json
                 Spatial-Transformation-{id,ood-left,ood-right}-test-1k.json

Every file name of the real layout; image paths relative to the image folders (not to the JSON's folder);
training records carry the released CoT form (a whole tagged text), test records none; GeoMath test records
also carry `problem_no_prompt`; spatial records an `[initial, final]` pair. Images come from the synthetic
generators, so they are real PNGs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from rrft_studio.tasks import counting, spatial, structure

FAMILIES = {"counting": counting, "structure": structure, "spatial": spatial}
SMALL = {"counting": counting.SceneSpec(image_size=56), "structure": structure.SceneSpec(image_size=64),
         "spatial": spatial.SceneSpec(image_size=56, max_objects=3)}


def _family_files(name: str, split: str, folder: Path, images: Path, n: int, seed: int) -> list[dict]:
    """n generated records of a family, their images moved under images/<family>/<split>/, paths relative."""
    module = FAMILIES[name]
    work = folder / f".gen-{name}-{split}"
    path = module.generate(work, n=n, seed=seed, spec=module.split_spec(SMALL[name], split), split=split)
    records = json.loads(path.read_text())
    out = []
    for rec in records:
        moved = []
        for rel in rec["image"] if isinstance(rec["image"], list) else [rec["image"]]:
            target = images / name / split / Path(rel).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(work / rel), target)
            moved.append(f"{name}/{split}/{Path(rel).name}")
        rec["image"] = moved if isinstance(rec["image"], list) else moved[0]
        out.append(rec)
    shutil.rmtree(work)
    return out


def build(root: Path, n: int = 4) -> Path:
    """Write the miniature under root/Reason-RFT-CoT-Dataset and return that folder."""
    top = root / "Reason-RFT-CoT-Dataset"
    train_images, test_images = top / "images" / "train_images", top / "images" / "test_images"
    (top / "train_jsons").mkdir(parents=True)
    (top / "test_jsons").mkdir()
    for name, module in FAMILIES.items():
        for split, file in module.DATASET.items():
            images = train_images if split == "train" else test_images
            records = _family_files(name, split, top, images, n, seed=7 + len(split))
            for rec in records:
                if split == "train":  # the released CoT texts hold the whole tagged answer
                    rec["cot"] = f"<think>\n{rec['cot']}\n</think>\n<answer>{rec['answer']}</answer>"
                else:
                    del rec["cot"]
                    if name == "structure" and split == "id":
                        rec["problem_no_prompt"] = rec["problem"]
            folder = "train_jsons" if split == "train" else "test_jsons"
            (top / folder / file).write_text(json.dumps(records, indent=1))
    # an optional training set (read through the custom task) and an RL-format file (solution, tagged)
    geoqa = json.loads((top / "train_jsons" / structure.DATASET["train"]).read_text())
    (top / "train_jsons" / "GeoQA-train-1k-cot.json").write_text(json.dumps(geoqa[:2]))
    rl = [{"id": r["id"], "image": r["image"], "problem": r["problem"], "solution": f"<answer> {r['answer']} </answer>"}
          for r in json.loads((top / "train_jsons" / counting.DATASET["train"]).read_text())]
    (top / "train_jsons" / "A3-Visual-Counting-train-rl.json").write_text(json.dumps(rl))
    return top
