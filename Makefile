# Switchboard: `make run` starts the platform, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PIP := $(BIN)/pip --disable-pip-version-check --quiet

.PHONY: run test lint format check messages clean bench frontend

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.base-installed: requirements/base.txt | $(BIN)/python
	$(PIP) install -r requirements/base.txt
	@touch $@

$(VENV)/.dev-installed: requirements/base.txt requirements/dev.txt | $(BIN)/python
	$(PIP) install -r requirements/dev.txt
	@touch $@ $(VENV)/.base-installed

# Front-end packages (package.json): `npm ci` again whenever package.json or the lock file is newer
# than the stamp it leaves in node_modules.
NPM ?= npm
NODE_STAMP := node_modules/.installed

$(NODE_STAMP): package.json package-lock.json
	@command -v $(NPM) >/dev/null 2>&1 || { echo "make: npm not found: install Node.js 18 or newer with npm" \
		"(Debian: apt-get install nodejs npm) for the front-end packages in package.json" >&2; exit 1; }
	$(NPM) ci --no-audit --no-fund
	@touch $@

## frontend: install the front-end packages from package-lock.json (htmx; axe-core for the browser tests)
frontend: $(NODE_STAMP)

## run: install, migrate, create the demo operator and demo workflows, serve on http://$(HOST):$(PORT)
run: $(VENV)/.base-installed
	@# Pages still work without the packages (unstyled parts aside), so a missing npm only warns here.
	@$(MAKE) --no-print-directory frontend || echo "make run: continuing without the front-end packages" >&2
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py ensure_demo_operator
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py serve --host $(HOST) --port $(PORT)

## test: install the dev requirements and run the whole suite (PYTEST_ARGS to narrow it)
test: $(VENV)/.dev-installed $(NODE_STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

## lint: ruff, Django's system checks, and no missing migrations
lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run

format: $(VENV)/.dev-installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## messages: refresh the translation catalogues and compile them (needs gettext)
messages: $(VENV)/.dev-installed
	$(BIN)/python manage.py makemessages --locale zh_Hans --ignore ".venv/*" --ignore "var/*" --ignore "node_modules/*" --no-obsolete
	$(BIN)/python manage.py compilemessages --locale zh_Hans --ignore ".venv/*"

clean:
	rm -rf $(VENV) var staticfiles node_modules .pytest_cache .ruff_cache

$(VENV)/.prod-installed: requirements/base.txt requirements/prod.txt | $(BIN)/python
	$(PIP) install -r requirements/prod.txt
	@touch $@

## bench: engine overhead per node (B1), runs/s on real workers (B2), live-stream latency (B3),
## API throughput on gunicorn + uvicorn workers (B4); needs PostgreSQL and Redis
bench: $(VENV)/.dev-installed $(VENV)/.prod-installed
	$(BIN)/python -m bench.run
