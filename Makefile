# `make run` (the demo) and `make test` set everything up from nothing: a .venv with the project and
# its dev tools, and the compiled translations.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PO := $(wildcard locales/*/LC_MESSAGES/messages.po)
MO := $(PO:.po=.mo)
BABEL_KEYWORDS := --no-default-keywords -k _ -k __ -k gettext:2 -k ngettext:2,3

.PHONY: run test lint test-sqlite test-postgres setup system-deps locales locales-extract \
	locales-update migrations bench clean

# The demo (a demo salon, its own YClients, a web chat): what a newcomer should see first.
# Production is `salonbot serve`.
run: setup
	$(BIN)/salonbot demo

test: setup system-deps lint test-sqlite test-postgres

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo
	$(BIN)/python tests/lint_static.py

test-sqlite: setup
	SALONBOT_TEST_DB=sqlite $(BIN)/pytest

# Needs the local PostgreSQL (TEST_POSTGRES_DSN, default postgres://postgres@127.0.0.1:5432/test);
# without it the pass is skipped with the reason, unless CI=true, where it fails.
test-postgres: setup
	SALONBOT_TEST_DB=postgres $(BIN)/pytest

setup: $(VENV)/.installed $(MO)

# Debian packages outside the venv: nodejs for `node --check` of web/static/*.js in `make lint`,
# chromium for the browser test of the onboarding page,
# fonts-dejavu-core for the Cyrillic text on the printable poster, zbar-tools (zbarimg) to read
# back the client's QR code in the bot's end-to-end test. Installed when missing and we are
# root (as in CI); otherwise the command to run is printed and the tests that need them skip
# (they fail instead under CI=true).
SYSTEM_PACKAGES := nodejs chromium fonts-dejavu-core zbar-tools
system-deps:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ]; then echo "system packages present: $(SYSTEM_PACKAGES)"; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	else echo "missing system packages: $$missing (sudo apt-get install $$missing)"; fi

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
	$(BIN)/python bench/bot.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache $(MO)
