# The front door: `make run` serves the app, `make test` runs the tests. Both set everything up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test setup setup-dev runner sdk-toolchains migrate static lint format worker beat bench screenshots clean

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

# The compilers of the SDK examples the tests build (docs/sdk/): Debian's Rust for WebAssembly
# (called as /usr/bin/cargo, never a rustup toolchain) and AssemblyScript from npm. Zig comes
# from PyPI with requirements-dev.txt.
RUST_PACKAGES := rustc cargo libstd-rust-dev-wasm32 librust-serde-json-dev
sdk-toolchains:
	@test -x /usr/bin/cargo -a -d /usr/lib/rustlib/wasm32-unknown-unknown -a -d /usr/share/doc/librust-serde-json-dev || (apt-get update -qq && apt-get install -y -qq $(RUST_PACKAGES) >/dev/null)
	@command -v npm >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null)
	@test -x sdk/assemblyscript/node_modules/.bin/asc || npm ci --prefix sdk/assemblyscript --no-audit --no-fund --loglevel=error

test: setup-dev sdk-toolchains
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

bench: setup-dev sdk-toolchains
	$(PY) bench/sandbox.py

clean:
	rm -rf $(VENV) build var
