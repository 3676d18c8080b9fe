# `make run` and `make test` set everything up from nothing: a .venv with the project and
# its dev tools, and the compiled translations.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PO := $(wildcard locales/*/LC_MESSAGES/messages.po)
MO := $(PO:.po=.mo)
BABEL_KEYWORDS := --no-default-keywords -k _ -k __ -k gettext:2 -k ngettext:2,3

.PHONY: run test lint test-sqlite test-postgres setup locales locales-extract locales-update \
	migrations bench clean

run: setup
	$(BIN)/salonbot serve

test: setup lint test-sqlite test-postgres

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test-sqlite: setup
	SALONBOT_TEST_DB=sqlite $(BIN)/pytest

# Needs the local PostgreSQL (TEST_POSTGRES_DSN, default postgres://postgres@127.0.0.1:5432/test);
# without it the pass is skipped with the reason, unless CI=true, where it fails.
test-postgres: setup
	SALONBOT_TEST_DB=postgres $(BIN)/pytest

setup: $(VENV)/.installed $(MO)

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11+ is needed: make PYTHON=python3.11 ..."; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

locales: $(MO)

%.mo: %.po $(VENV)/.installed
	$(BIN)/pybabel compile --statistics -i $< -o $@

# After changing user-facing texts: extract, merge into both catalogs, translate, commit.
locales-extract: $(VENV)/.installed
	$(BIN)/pybabel extract -F babel.cfg $(BABEL_KEYWORDS) --project salonbot --no-location \
		--sort-output -o locales/messages.pot .

locales-update: locales-extract
	$(BIN)/pybabel update -i locales/messages.pot -d locales -D messages --no-fuzzy-matching

# After changing core/models.py: write the next migration file.
migrations: $(VENV)/.installed
	$(BIN)/tortoise -c core.db.TORTOISE_ORM makemigrations

bench: setup
	$(BIN)/python bench/ledger.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(MO)
