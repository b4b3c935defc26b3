# gd-orchestrator: `make run` (dev stack), `make test` (CI). Each target creates or refreshes
# the virtual environment first: `pip install -e '.[test]'` re-runs only when pyproject.toml
# is newer than the stamp file.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST := $(BIN)/python -m pytest
PYTEST_ARGS ?=

# Run a second time on the local dev server (the real persistence, no time skipping).
LOCAL_TESTS := tests/test_access_request.py tests/test_access_e2e.py tests/test_technician.py \
	tests/test_beneficiaries.py tests/test_client.py tests/test_audit.py tests/test_bad_input.py
LOCAL_EXISTING = $(wildcard $(LOCAL_TESTS))

# pytest exits 5 when no test was collected (nothing marked yet): not a failure here.
allow_empty = rc=0; $(1) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "(nenhum teste coletado)"; elif [ $$rc -ne 0 ]; then exit $$rc; fi

.PHONY: venv run test test-postgres soak clean chromium

venv: $(STAMP)

# The web inbox's htmx: the pinned npm package (package.json/package-lock.json), served by
# the app itself. Without npm the pages still work (htmx only enhances them).
WEB_ASSETS := node_modules/htmx.org/dist/htmx.min.js
$(WEB_ASSETS): package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then npm ci --no-audit --no-fund --ignore-scripts && touch $@; \
	else echo "aviso: npm ausente; a caixa de entrada funciona sem htmx"; fi

# Browser tests drive Debian's Chromium (Playwright with executable_path; no browser download).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q chromium; \
		else echo "aviso: instale o chromium (apt-get install -y chromium) para os testes do navegador"; fi; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[test]'
	touch $@

run: venv $(WEB_ASSETS)
	$(BIN)/gd dev up

test: venv $(WEB_ASSETS) chromium
	@$(call allow_empty,$(PYTEST) -m "not soak" --workflow-environment time-skipping $(PYTEST_ARGS))
	@files="$(LOCAL_EXISTING)"; \
	if [ -z "$$files" ]; then echo "(nenhum arquivo de LOCAL_TESTS existe ainda)"; exit 0; fi; \
	$(call allow_empty,$(PYTEST) -m "not postgres and not soak" --workflow-environment local $(PYTEST_ARGS) $$files)

test-postgres: venv
	@$(call allow_empty,$(PYTEST) -m postgres $(PYTEST_ARGS))

soak: venv
	@$(call allow_empty,$(PYTEST) -m soak $(PYTEST_ARGS))

clean:
	rm -rf var
