# animestyle: the two commands of the README, and a few more.
#   make demo   set up .venv and run the main job on the embedded synthetic default
#   make test   set up .venv and run every check CI runs
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup browser docs serve-docs readme clean notebooks

$(STAMP): pyproject.toml setup.py
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

# The main job: the pipeline on the synthetic default at the `cpu` preset.
demo: $(STAMP)
	$(BIN)/animestyle pipeline --preset cpu --run runs/demo

# Everything CI checks: notebooks and library in sync, README current, then the whole pytest suite
# (which executes every notebook at the tiny preset).
test: $(STAMP) browser
	bash tools/check_sync.sh $(BIN)
	$(BIN)/python -m pytest -n 2 --dist loadfile tests

# Browser tests drive Debian's chromium through the playwright package (never `playwright install`).
browser:
	@command -v chromium >/dev/null 2>&1 || { if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; else echo "chromium is missing: browser tests will be skipped (apt-get install chromium)"; fi; }

# Re-run every notebook at the `cpu` preset and keep the outputs (what the committed notebooks carry).
# Runs on copies, so the notebooks stay editable meanwhile; about 65 minutes on two cores.
notebooks: $(STAMP)
	$(BIN)/python tools/run_nb.py cpu nbs/[0-9]*.ipynb nbs/index.ipynb

docs: $(STAMP)
	$(BIN)/python tools/docs.py sidebar
	$(BIN)/python tools/docs.py build
	@echo "site in _docs/; open it with: $(BIN)/python tools/docs.py serve"

serve-docs: $(STAMP)
	$(BIN)/python tools/docs.py serve

readme: $(STAMP)
	$(BIN)/python tools/docs.py readme

clean:
	rm -rf runs/notebooks-tiny _docs _proc
