# The few verbs people type. Each creates the virtual environment first when it is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV ?= .venv
BIN = $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test bench bench-quick lint install clean system-tools

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

## Serve a seeded demo trial on http://$(HOST):$(PORT)/ (SQLite, tasks in-process).
demo: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

# System tools the tests use that pip cannot install, from Debian's packages where missing:
# the compose CLI (to validate docker-compose.yml) and Chromium (browser tests; Playwright
# drives it and downloads no browser of its own) and GNU gettext (makemessages and msgfmt, for
# the check that the Chinese catalogue is complete and compiled).
APT_INSTALL = apt-get install -y -qq $(1) >/dev/null 2>&1 || \
	{ apt-get update -qq && apt-get install -y -qq $(1) >/dev/null; }
system-tools:
	@docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 || { \
	  echo "Installing docker-compose with apt-get (the tests validate docker-compose.yml)"; \
	  $(call APT_INSTALL,docker-compose); }
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing chromium with apt-get (browser tests)"; $(call APT_INSTALL,chromium); }
	@command -v msgfmt >/dev/null 2>&1 && command -v xgettext >/dev/null 2>&1 || { \
	  echo "Installing gettext with apt-get (the catalogue check)"; $(call APT_INSTALL,gettext); }

## Lint, check migrations are complete, check the import layers (pyproject.toml), run the whole
## test suite.
test: install system-tools
	$(BIN)/ruff check .
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/lint-imports
	$(BIN)/pytest $(PYTEST_ARGS)

## Benchmarks on PostgreSQL (its own edc_bench_* databases): synthetic trials of 60 and 600
## subjects, saves, pages, exports, reminder jobs, a load test; prints one table with every
## target beside its figure (benchmarks/results.json keeps the raw figures). ≤ 15 min.
## bench-quick: 60 subjects, no reminder jobs, no load test, the same table. ≤ 3 min.
$(BIN)/.bench-installed: $(BIN)/.installed
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@

bench: $(BIN)/.bench-installed
	bash .ci/services
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

bench-quick: $(BIN)/.bench-installed
	bash .ci/services
	$(BIN)/python benchmarks/run.py --quick $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles .pytest_cache .ruff_cache
