"""The demo's figures (docs/demo.md) came from presets/demo.yaml as it is: the settings line under the demo's table
names the run's settings, and each must equal the preset's (a change to the preset without a new run fails)."""

import re

import yaml

from conftest import ROOT
from rrft_studio import config

MARK = "<!-- demo-settings:"


def _readme_settings() -> dict[str, object]:
    text = (ROOT / "docs" / "demo.md").read_text()
    start = text.index(MARK)
    line = text[text.index("\n", start) + 1:].splitlines()[0]
    pairs = re.findall(r"([a-z_]+\.[a-z_.]+)=(\S+?)(?=[`\s]|$)", line)
    assert pairs, line
    return {key: yaml.safe_load(value) for key, value in pairs}


def test_readme_demo_settings_are_the_presets():
    cfg = config.load(ROOT / "presets" / "demo.yaml")
    settings = _readme_settings()
    for key, value in settings.items():
        actual = config.get(cfg, key)
        assert actual == value or (isinstance(actual, float) and abs(actual - float(value)) < 1e-12), \
            f"docs/demo.md says {key}={value}, presets/demo.yaml gives {actual}: rerun the demo and update docs/demo.md"


def test_readme_names_every_grpo_setting_of_the_demo():
    """Every GRPO key the preset sets (and Stage 1's length) is on docs/demo.md's settings line."""
    preset = yaml.safe_load((ROOT / "presets" / "demo.yaml").read_text())
    wanted = {f"grpo.{k}" for k in preset["grpo"]} | {"sft.max_steps", "data.sft_samples"}
    assert wanted <= set(_readme_settings()), sorted(wanted - set(_readme_settings()))


def test_the_demo_page_quotes_the_committed_sweep_and_run():
    """docs/demo.md's figures are the committed artifacts': the sweep's table verbatim (docs/demo/seeds.json, the
    spread over seeds and thread counts) and the last lines `make demo` printed (docs/demo/report.json), which
    README quotes too."""
    import json

    from rrft_studio.eval import report, sweep

    text = (ROOT / "docs" / "demo.md").read_text()
    record = sweep.load(ROOT / "docs" / "demo" / "seeds.json")
    assert sweep.table(record) in text, "docs/demo.md's sweep table is not docs/demo/seeds.json's: paste sweep.md"
    assert record["preset"] == "presets/demo.yaml" and record["overrides"] == []
    run = json.loads((ROOT / "docs" / "demo" / "report.json").read_text())
    printed = [line for line in report.text(run).splitlines()
               if line.startswith(("accuracy, ", "GRPO - SFT", "spread over seeds"))]
    assert len(printed) == 5, printed  # base, after SFT, after GRPO, the paired gain, its place in the spread
    readme = (ROOT / "README.md").read_text()
    for line in printed:
        assert line in text, f"docs/demo.md does not quote the demo run's line {line!r} (docs/demo/report.json)"
        assert line in readme, f"README.md does not quote the demo run's line {line!r} (docs/demo/report.json)"
