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

demo: $(STAMP)
	$(VENV)/bin/rrft-studio train presets/demo.yaml

test: $(STAMP)
	$(PY) -m pytest

clean-venv:
	rm -rf $(VENV)
