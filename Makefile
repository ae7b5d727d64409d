# The front door: `make run` serves the app, `make test` runs the tests. Both set everything up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test setup setup-dev runner migrate static lint format worker beat bench screenshots clean

$(VENV)/.base: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.base requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

setup: $(VENV)/.base runner migrate static
	$(PY) manage.py load_templates

setup-dev: $(VENV)/.dev runner

# The generic Python-step interpreter component; rebuilt only when its sources change.
runner: $(VENV)/.base
	$(PY) manage.py sandbox build

migrate: $(VENV)/.base
	$(PY) manage.py migrate --noinput

# The files the server serves under /static/ (whitenoise), gathered into STATIC_ROOT.
static: $(VENV)/.base
	$(PY) manage.py collectstatic --noinput --verbosity 0

run: setup
	$(PY) manage.py setup_demo
	@echo "Serving Flowbuilder on http://$(HOST):$(PORT)/"
	$(PY) manage.py runserver $(HOST):$(PORT)

test: setup-dev
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(BIN)/pytest $(PYTEST_ARGS)

# The pictures in docs/screenshots/, taken by the browser journeys.
screenshots: setup-dev
	$(PY) manage.py collectstatic --noinput --verbosity 0
	FLOWS_SCREENSHOTS=1 $(BIN)/pytest tests/web/test_browser.py tests/web/test_builder_canvas.py tests/web/test_flow_files.py tests/web/test_page_fixes.py

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

worker: setup
	$(BIN)/celery -A flowbuilder worker --loglevel=info

beat: setup
	$(BIN)/celery -A flowbuilder beat --loglevel=info

bench: setup-dev
	$(PY) bench/sandbox.py

clean:
	rm -rf $(VENV) build var
