# The two commands of README.md: `make demo` and `make test`. Each creates .venv and installs the pinned
# dependencies (constraints.txt, the set tested together) when they are missing or changed.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install clean-venv

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# The report ends with where this run's GRPO gain falls in the spread over seeds and thread counts that
# docs/demo.md quotes (docs/demo/seeds.json, the sweep that measured it).
demo: $(STAMP)
	$(VENV)/bin/rrft-studio train presets/demo.yaml run.compare_to=docs/demo/seeds.json

# The suite's files are shared out among workers, one per core up to 4 (each trains and starts processes of its
# own; a file stays on one worker, so its module fixtures run once); `pytest tests/test_x.py` runs in one process.
test: $(STAMP)
	$(PY) -m pytest -n auto --maxprocesses 4 --dist loadfile

clean-venv:
	rm -rf $(VENV)
