"""Does the reasoning support the answer? A family's `consistency` reads the text inside <think> and the answer
given, and says whether the reasoning's last result is that answer (True / False), or None where the reasoning
states nothing to check. It does not say whether the answer is right: a right answer after reasoning that does
not lead to it (a fixed preamble, a sum that does not add up) is what it finds.

- `arithmetic` (counting): every equation written in the reasoning holds (`1 + 1 + 1 = 5` does not), and its
  last result (the number after its last '=', else its last number) is the answer.
- `last_result` (structure): the reasoning's last result is the answer (to 1%), or for a multiple-choice
  answer, the last choice letter the reasoning names.
- `calls` (spatial): the function calls the reasoning names last (`The transformation is ...`, else every call
  it names) are those of the answer, as a set.

A step further where the record knows its scene (the synthetic counting generator writes each record's reasoning
from the scene's facts, its `cot`): `claims_true` (counting) says whether the counts the reasoning states (`3
cubes`, `There are 5 objects`, `The brown spheres: 1`, `Adding 2`) are those of the scene, as the record's
reasoning states them. "I count the objects by shape: 3 cubes, 1 sphere, 1 cylinder. 3 + 1 + 1 = 5." for a scene
of one cube, one sphere and three cylinders is consistent (the sum holds and gives the answer) and not true.
"""

from __future__ import annotations

import re

NUMBER = r"-?\d+(?:\.\d+)?"
_NUMBER = re.compile(NUMBER)
_EQUATION = re.compile(rf"((?:{NUMBER}\s*[-+*/×x]\s*)+{NUMBER})\s*=\s*({NUMBER})")
_CHOICE = re.compile(r"\b([A-E])\b")
_CALL = re.compile(r"(\w+)\(\s*([^,()]+?)\s*,\s*([^()]+?)\s*\)")


def _number(text: str) -> float | None:
    found = _NUMBER.findall(text.replace(",", ""))
    return float(found[-1]) if found else None


def _result(reasoning: str) -> float | None:
    """The reasoning's last result: the number after its last '=' or '≈' (a unit such as cm^2 may follow), else
    its last number."""
    text = reasoning.replace(",", "")
    cut = max(text.rfind("="), text.rfind("≈"))
    if cut >= 0 and (after := _NUMBER.search(text, cut)):
        return float(after.group())
    return _number(text)


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-2 * max(1.0, abs(b))


def _holds(expression: str, result: str) -> bool:
    """Left to right, as the reasoning writes it (these sums and differences have no precedence to respect)."""
    tokens = re.findall(r"\d+(?:\.\d+)?|[-+*/×x]", expression)
    value = float(tokens[0])
    for op, token in zip(tokens[1::2], tokens[2::2]):
        number = float(token)
        value = (value + number if op == "+" else value - number if op == "-" else
                 value / number if op == "/" and number else value * number)
    return _close(value, float(result))


def arithmetic(reasoning: str, answer: str) -> bool | None:
    last, given = _result(reasoning), _number(answer)
    if last is None or given is None:
        return None
    equations = _EQUATION.findall(reasoning.replace(",", ""))
    return all(_holds(left, right) for left, right in equations) and _close(last, given)


def last_result(reasoning: str, answer: str) -> bool | None:
    choice = answer.strip().strip("().").upper()
    if len(choice) == 1 and choice in "ABCDE":
        named = _CHOICE.findall(reasoning)
        return named[-1] == choice if named else None
    last, given = _result(reasoning), _number(answer)
    if last is None or given is None:
        return None
    return _close(last, given)


def _calls(text: str) -> set[tuple[str, str, str]]:
    return {(f, o.strip(), v.strip().strip("'\"")) for f, o, v in _CALL.findall(text)}


def calls(reasoning: str, answer: str) -> bool | None:
    given = _calls(answer)
    stated = reasoning.rsplit("The transformation is", 1)
    named = _calls(stated[1]) if len(stated) == 2 else _calls(reasoning)
    if not given or not named:
        return None
    return named == given


_COUNT = re.compile(r"\b(\d+) ([a-z]+)")  # "3 cubes", "5 objects"
_NAMED = re.compile(r"\bThe ([a-z][a-z ]*?): (\d+)")  # "The brown spheres: 1"
_ADDED = re.compile(r"\bAdding (\d+)")


def _singular(word: str) -> str:
    return word[:-2] if word.endswith("ses") else word[:-1] if word.endswith("s") else word


def _claims(reasoning: str) -> dict[str, int]:
    """The counts a counting reasoning states, by what they count (nouns in the singular)."""
    text = reasoning.replace("There is 1 object", "There are 1 objects")
    out = {_singular(noun): int(n) for n, noun in _COUNT.findall(text)}
    out.update({f"the {name.strip()}": int(n) for name, n in _NAMED.findall(text)})
    out.update({"added": int(n) for n in _ADDED.findall(text)})
    return out


def claims_true(reasoning: str, reference: str) -> bool | None:
    """Are the counts `reasoning` states those `reference` (the record's reasoning, written from its scene)
    states? A count of something the reference does not count is false where both count by shape (the reference
    names every shape in the scene); None where the reasoning states no count the reference can check."""
    stated, truth = _claims(reasoning), _claims(reference)
    by_shape = "by shape" in reasoning and "by shape" in reference
    checked = []
    for key, n in stated.items():
        if key in truth:
            checked.append(truth[key] == n)
        elif by_shape and key not in ("object", "added") and not key.startswith("the ") and n > 0:
            checked.append(False)  # a shape the scene does not have
    return all(checked) if checked else None
