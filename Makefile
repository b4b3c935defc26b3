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
# Every file listed must exist: a renamed file fails the run instead of dropping out.
LOCAL_TESTS := tests/test_access_request.py tests/test_access_e2e.py tests/test_technician.py \
	tests/test_beneficiaries.py tests/test_client.py tests/test_audit.py tests/test_bad_input.py \
	tests/test_email_change.py

# pytest's own exit status is the target's: 5 (no test collected) fails like any other.
check_local_tests = missing=""; for f in $(LOCAL_TESTS); do [ -f "$$f" ] || missing="$$missing $$f"; done; \
	if [ -n "$$missing" ]; then echo "LOCAL_TESTS cita arquivos que não existem:$$missing" >&2; exit 1; fi

.PHONY: venv run test test-postgres soak clean chromium

venv: $(STAMP)

# The web inbox's htmx: the pinned npm package (package.json/package-lock.json), served by
# the app itself. Without npm the pages still work (htmx only enhances them).
WEB_ASSETS := node_modules/htmx.org/dist/htmx.min.js
$(WEB_ASSETS): package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then npm ci --no-audit --no-fund --ignore-scripts && touch $@; \
	else echo "aviso: npm ausente; a caixa de entrada funciona sem htmx"; fi

# Browser tests drive Debian's Chromium (Playwright with executable_path; no browser download).
# chromium-l10n: Chromium's own controls ("Escolher arquivo", dd/mm/aaaa) in pt-BR.
chromium:
	@if [ ! -x /usr/bin/chromium ] || ! dpkg -s chromium-l10n >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q chromium chromium-l10n; \
		else echo "aviso: instale o chromium (apt-get install -y chromium chromium-l10n) para os testes do navegador"; fi; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[test]'
	touch $@

run: venv $(WEB_ASSETS)
	$(BIN)/gd dev up

test: venv $(WEB_ASSETS) chromium
	@$(check_local_tests)
	$(PYTEST) -m "not soak" --workflow-environment time-skipping $(PYTEST_ARGS)
	$(PYTEST) -m "not postgres and not soak" --workflow-environment local $(PYTEST_ARGS) $(LOCAL_TESTS)

test-postgres: venv
	$(PYTEST) -m postgres $(PYTEST_ARGS)

soak: venv
	$(PYTEST) -m soak $(PYTEST_ARGS)

clean:
	rm -rf var
