# The two commands: `make demo` and `make test`. Each creates .venv and installs when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STORE ?= runs/store.sqlite
WORKERS ?= 2
# Test processes (pytest-xdist, a file per process at a time: a module's fixtures are built once);
# 0 runs the tests in pytest's own process.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

.PHONY: demo test test-quick chromium bench lint format clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m selfconsume.demo --store $(STORE) --workers $(WORKERS)
	$(BIN)/selfconsume report --store $(STORE) --out report

test: $(STAMP) chromium
	$(PYTEST)

# The edit loop: every test but those marked slow (presets at quick scale, deep families trained
# to a tolerance, the browser), which take about half of make test's time.
test-quick: $(STAMP)
	$(PYTEST) -m "not slow"

# The report's browser test runs headless Chromium: installed with apt-get when missing and this
# is root (instant when present); otherwise that test skips, saying why (and fails in CI).
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium (apt-get) for the report's browser test"; \
		export DEBIAN_FRONTEND=noninteractive; \
		{ apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
		echo "apt-get could not install chromium: the browser test will skip"; \
	else \
		echo "chromium is missing and installing it needs root and apt-get: the browser test will skip"; \
	fi

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py --out bench-results/bench.json

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf runs report bench-results
