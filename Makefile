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
	$(BIN)/bestchat db upgrade
	$(BIN)/bestchat create-admin admin@localhost --if-none-exists
	$(BIN)/bestchat serve --host $(HOST) --port $(PORT)

test: install-dev
	$(BIN)/pytest $(PYTEST_ARGS)

install: $(VENV)/.installed-runtime
install-dev: $(VENV)/.installed-dev

$(VENV)/.installed-runtime: requirements/base.txt requirements/build.txt setup.cfg $(wildcard plugins/*/setup.cfg)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements/build.txt -r requirements/base.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e . $(addprefix -e ,$(PLUGIN_DIRS))
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-runtime requirements/dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements/dev.txt
	touch $@

# Re-resolve the pins after editing requirements/*.in (needs pip-tools; keeps hashes).
lock:
	$(BIN)/python -m pip install --quiet pip-tools
	cd requirements && ../$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links -o base.txt base.in
	cd requirements && ../$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links -o build.txt build.in
	cd requirements && ../$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links -o dev.txt dev.in
