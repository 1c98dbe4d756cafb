# The two commands of the README, and the pieces they are made of.
# `make run`: install into .venv from the hashed lock files, migrate, ensure an admin, serve.
# `make test`: install the dev dependencies too and run the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PLUGIN_DIRS := $(patsubst %/setup.cfg,%,$(wildcard plugins/*/setup.cfg))
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install install-dev lock

run: install
	@echo "==> database: bestchat db upgrade"
	$(BIN)/bestchat db upgrade
	@echo "==> admin account: bestchat create-admin admin@localhost --if-none-exists"
	$(BIN)/bestchat create-admin admin@localhost --if-none-exists
	@echo "==> serving http://$(HOST):$(PORT) (Ctrl-C stops)"
	$(BIN)/bestchat serve --host $(HOST) --port $(PORT)

test: install-dev
	$(BIN)/pytest $(PYTEST_ARGS)

install: $(VENV)/.installed-runtime
install-dev: $(VENV)/.installed-dev

# Every install step runs the venv's own pip, after replacing it with the pinned, hashed one
# (requirements/pip.txt). The locked files list every package with its hashes, so each step
# installs with --no-deps: pip has no resolution left to do, and a new upstream release can
# never change or break what is installed. `pip check` then proves the lock is complete.
PIP := $(BIN)/python -m pip --quiet --disable-pip-version-check --no-input

$(VENV)/.installed-runtime: requirements/pip.txt requirements/base.txt requirements/build.txt setup.cfg $(wildcard plugins/*/setup.cfg)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "BestChat needs Python 3.11 or newer; this is " + sys.version.split()[0] + " (set PYTHON=python3.11)")'
	@echo "==> [1/5] virtual environment: $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "==> [2/5] pinned pip (requirements/pip.txt)"
	@$(PIP) install --require-hashes --no-deps -r requirements/pip.txt
	@echo "==> [3/5] locked dependencies (requirements/build.txt, requirements/base.txt); a minute or two on a first install"
	@$(PIP) install --require-hashes --no-deps -r requirements/build.txt -r requirements/base.txt
	@echo "==> [4/5] BestChat and its first-party plugins ($(PLUGIN_DIRS))"
	@$(PIP) install --no-deps --no-build-isolation -e . $(addprefix -e ,$(PLUGIN_DIRS)) \
	  >$(VENV)/editable-install.log 2>&1 || { cat $(VENV)/editable-install.log; exit 1; }
	@echo "==> [5/5] checking the venv against the lock (pip check, scripts/check_lock.py)"
	@$(BIN)/python -m pip check
	@$(BIN)/python scripts/check_lock.py requirements/pip.txt requirements/build.txt requirements/base.txt
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-runtime requirements/dev.txt
	@echo "==> test dependencies (requirements/dev.txt)"
	@$(PIP) install --require-hashes --no-deps -r requirements/dev.txt
	@$(BIN)/python -m pip check
	@$(BIN)/python scripts/check_lock.py requirements/base.txt requirements/dev.txt
	@touch $@

# Re-resolve the pins after editing requirements/*.in (needs pip-tools; keeps hashes).
lock:
	$(BIN)/python -m pip install --quiet pip-tools
	cd requirements && ../$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links -o base.txt base.in
	cd requirements && ../$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links -o build.txt build.in
	cd requirements && ../$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --no-emit-index-url --no-emit-find-links -o pip.txt pip.in
	cd requirements && ../$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links -o dev.txt dev.in
