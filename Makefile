# One command each for run, test, lint, types. CI (.ci/run) calls the same targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo serve test test-embedded lint types check format clean browser-deps proxy-deps bench lock

# The exact, hash-checked set of requirements/dev.txt, then Lykta itself (editable) on top.
$(STAMP): pyproject.toml requirements/dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# Pin the whole set (with hashes) from pyproject.toml's ranges: the production set for the
# Dockerfile, the development set for make and CI, the benchmark's on top. uv resolves; pip
# installs. Run it after changing a range, and commit requirements/.
lock:
	$(BIN)/python -m pip install --quiet uv
	cd requirements && ../$(BIN)/uv pip compile ../pyproject.toml --quiet --universal \
	  --python-version 3.11 --generate-hashes -o prod.txt
	cd requirements && ../$(BIN)/uv pip compile ../pyproject.toml --quiet --universal \
	  --python-version 3.11 --generate-hashes --extra dev -c prod.txt -o dev.txt
	cd requirements && ../$(BIN)/uv pip compile ../pyproject.toml --quiet --universal \
	  --python-version 3.11 --generate-hashes --extra dev --extra bench -c dev.txt -o bench.txt

demo: $(STAMP)  ## Lykta on SQLite with demo lines and accounts, http://127.0.0.1:8000
	$(BIN)/lykta demo

serve: $(STAMP)  ## Lykta with settings from LYKTA_* variables
	$(BIN)/lykta serve --migrate

# Browser tests drive Debian's Chromium (installed here if missing; needs root) and inject
# axe-core from the npm registry (pinned in tests/browser/package-lock.json).
browser-deps:
	@command -v chromium >/dev/null || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	@test -f tests/browser/node_modules/axe-core/axe.min.js || \
	  (cd tests/browser && npm ci --silent --no-audit --no-fund)

# The deployment example's reverse proxy (config/deploy/nginx.conf) is tested with Debian's
# nginx (installed here if missing; needs root).
proxy-deps:
	@test -x /usr/sbin/nginx || command -v nginx >/dev/null || { \
	  echo "installing Debian's nginx for the reverse proxy test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx; }

# Three workers on two cores (many tests wait on grace periods, restarts and clocks rather
# than compute), each taking whole test files (module fixtures such as a browser start once).
# The OpenAPI test runs apart, in one process: under xdist Schemathesis's generated tests
# are collected as one item, and the operations of the document mostly go untested.
OPENAPI_TEST := tests/test_openapi.py
test: $(STAMP) browser-deps proxy-deps  ## the whole test suite (needs PostgreSQL and Redis at 127.0.0.1)
	$(BIN)/pytest -n 3 --dist loadfile --ignore $(OPENAPI_TEST)
	$(BIN)/pytest -p no:xdist $(OPENAPI_TEST)

# The embedded default's part of the suite (SQLite, the in-process broker): needs neither
# PostgreSQL nor Redis. Redis is pointed at a port where nothing listens, so a test that
# needed it after all would fail here.
test-embedded: $(STAMP) browser-deps
	LYKTA_TEST_REDIS_URL=redis://127.0.0.1:9/0 $(BIN)/pytest -n 3 --dist loadfile \
	  -m "not redis and not postgres" --ignore $(OPENAPI_TEST)
	LYKTA_TEST_REDIS_URL=redis://127.0.0.1:9/0 $(BIN)/pytest -p no:xdist \
	  -m "not redis and not postgres" $(OPENAPI_TEST)

lint: $(STAMP)
	$(BIN)/ruff check app tests migrations bench
	$(BIN)/ruff format --check app tests migrations bench

types: $(STAMP)
	$(BIN)/mypy

check: lint types test

# The visitor's page drives Debian's Chromium on an emulated slow network (browser-deps).
bench: $(STAMP) browser-deps  ## the benchmarks (a few minutes; real processes on 127.0.0.1), then the chart
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/bench.txt
	$(BIN)/python -m bench.relay
	$(BIN)/python -m bench.queue
	$(BIN)/python -m bench.connections
	$(BIN)/python -m bench.visitor_page
	$(BIN)/python -m bench.metrics
	$(BIN)/python -m bench.chart

format: $(STAMP)
	$(BIN)/ruff format app tests migrations bench
	$(BIN)/ruff check --fix app tests migrations bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache lykta-demo.db*
