# The two commands a newcomer runs: `make demo` and `make test`.
# Each creates .venv and installs what it needs, so a fresh clone works as it is.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The exact versions the tests ran on; setup.py keeps the ranges a user's install may take.
CONSTRAINTS := constraints.txt

.PHONY: demo test lint install browser promtool constraints clean

$(STAMP): setup.py $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e '.[test,embedded,lint]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/kiebot demo

# The simulator's web page is tested in headless Chromium (Debian's package).
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

# The alert rules and a live /metrics scrape are checked with promtool (Debian's prometheus package).
promtool:
	@command -v promtool >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null)

# The suite mostly waits (on Telegram's pacing, retry_after, timeouts, other processes), so it runs
# on TEST_WORKERS pytest-xdist workers, more than the CPUs (tests/conftest.py keeps the tests of a
# module with a shared set-up on one worker). `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= 6

test: $(STAMP) browser promtool
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# The rules in the tools (pyproject.toml): ruff, mypy --strict, import-linter. All three run,
# and the target fails if any of them does.
lint: $(STAMP)
	@status=0; \
	echo "== ruff"; $(BIN)/ruff check . || status=1; \
	echo "== mypy"; $(BIN)/mypy || status=1; \
	echo "== import-linter"; $(BIN)/lint-imports --no-cache || status=1; \
	exit $$status

# After changing a dependency: rewrite constraints.txt from what .venv has now.
constraints: $(STAMP)
	{ sed -n '/^#/p' $(CONSTRAINTS); $(BIN)/pip freeze --exclude-editable | grep -v '^#' | grep -iv '^kiebot=='; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
	touch $(STAMP)

clean:
	rm -rf $(VENV) .kiebot .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
