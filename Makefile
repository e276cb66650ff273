# Quick start: `make demo` runs the engine with demo tickets; `make test` runs the tests.
# Both create the virtualenv (.venv) with the pinned dependencies on first use.
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml setup.py engine/ruleset/_native.c | cksum | cut -d' ' -f1)

.PHONY: demo dev test install postgres

install: $(STAMP)

$(STAMP): pyproject.toml setup.py engine/ruleset/_native.c
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ticketflow dev --demo

dev: $(STAMP)
	$(VENV)/bin/ticketflow dev

# The store tests need a PostgreSQL: as root with no TICKETFLOW_TEST_PG_URL given, install and start
# Debian's (idempotent, about a minute the first time); otherwise use the URL you set.
postgres:
	@if [ -z "$$TICKETFLOW_TEST_PG_URL" ] && [ "$$(id -u)" = 0 ]; then bash scripts/postgres.sh; fi

test: $(STAMP) postgres
	$(VENV)/bin/pytest -q
