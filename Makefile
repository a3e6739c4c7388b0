# revbridge developer commands. `make help` lists them.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.DEFAULT_GOAL := help
.PHONY: help demo test check lint typecheck bench docs clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,tryton]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

demo: $(STAMP)  ## run the main job on the embedded default (SQLite, in-process sandboxes)
	$(BIN)/revbridge demo

/usr/bin/chromium:  # the console's browser tests drive Debian's Chromium (no browser download)
	-apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium)

test: $(STAMP) /usr/bin/chromium  ## run the whole test suite (unit, integration on SQLite and PostgreSQL, scenarios)
	$(BIN)/python -m pytest -q

lint: $(STAMP)  ## ruff lint and format check, import contracts
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)  ## mypy strict on the package
	$(BIN)/mypy src

check: lint typecheck test  ## ruff, mypy strict and the tests

bench: $(STAMP)  ## benchmarks: one JSON line per result
	$(BIN)/python -m bench

docs: $(STAMP)  ## regenerate the command and configuration reference pages from the code
	$(BIN)/python -m revbridge.cli.reference

clean:  ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
