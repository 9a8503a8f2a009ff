"""Hostile completions for the rewards and checkers: inputs that make symbolic math slow (deep fraction nests,
power towers, factorials, huge exponents, long digit strings) and sheer size (200k characters). Shared by
tests/test_hostile_rewards.py (each must finish) and benchmarks/rewards_hostile.py (how long each takes)."""

from __future__ import annotations


def _nest(open_: str, inner: str, close: str, depth: int) -> str:
    return open_ * depth + inner + close * depth


# (name, completion) pairs; each is scored against a short true answer, once bare (math-verify decides where
# there is no answer tag) and once inside <answer> tags (the paper's scorer still asks math-verify there).
LATEX = [
    ("frac_nest_40", "$" + _nest("\\frac{1}{", "2", "}", 40) + "$"),
    ("frac_nest_12_boxed", "\\boxed{" + _nest("\\frac{1}{1+", "2", "}", 12) + "}"),
    ("frac_both_nest_12", "$" + _nest("\\frac{\\frac{1}{2}+", "1", "}{3}", 12) + "$"),
    ("frac_nest_200_bare", _nest("\\frac{1}{1+", "x", "}", 200)),
    ("sqrt_nest_30", "$" + _nest("\\sqrt{2+", "2", "}", 30) + "$"),
    ("tower_5", "$" + "2^{" * 5 + "2" + "}" * 5 + "$"),
    ("tower_9", "$" + "9^{" * 8 + "9" + "}" * 8 + "$"),
    ("tower_plain_3", "9^9^9"),
    ("tower_plain_9", "^".join(["9"] * 9)),
    ("exp_plain_1e9", "2**1000000000"),
    ("exp_1e6", "$2^{1000000}$"),
    ("exp_10_10_10", "$10^{10^{10}}$"),
    ("factorial_100", "$100!$"),
    ("factorial_10000", "$10000!$"),
    ("factorial_of_factorial", "$(100!)!$"),
    ("factorial_chain", "$10!!!!!!$"),
    ("factorial_plain", "the answer is 100000!"),
    ("binom_huge", "$\\binom{10^{9}}{10^{6}}$"),
    ("digits_2000", "$" + "9" * 2000 + "$"),
    ("digits_eq_5000", "1" * 5000 + " = x"),
    ("sum_of_fracs_300", "$" + "+".join(f"\\frac{{{i}}}{{{i + 1}}}" for i in range(1, 300)) + "$"),
    ("poly_power", "$(x+1)^{500}$"),
    ("matrix_power", "$\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}^{100000}$"),
    ("integral", "$\\int_0^{\\infty} e^{-x^{2}} \\sin(x^{3}) dx$"),
    ("unbalanced_braces", "$" + "\\frac{" * 500 + "$"),
]
SIZE = [
    ("chars_200k_plain", "x" * 200_000),
    ("chars_200k_fracs", "\\frac{1}{2}" * 18_000),
    ("chars_200k_tags", "<answer>" * 25_000),
    ("chars_200k_think", "<think>" + "2^{9^{9}} " * 20_000 + "</think><answer>3</answer>"),
]
ANSWERS = ("3", "\\frac{5}{2}")


def corpus() -> list[tuple[str, str]]:
    """Every hostile completion, bare and in answer tags: (name, text)."""
    items = LATEX + SIZE
    return items + [(f"{name}+tag", f"<answer>{text}</answer>") for name, text in LATEX]
