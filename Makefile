# PGI: `make run` starts everything on embedded defaults; `make test` runs the suite.
# Both create .venv and install the pinned requirements on first use (and again when they change).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/pgi
TEST_REDIS_URL ?= redis://127.0.0.1:6379/1
PYTEST_WORKERS ?= 2

.PHONY: run test install install-dev bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "PGI needs Python 3.11 or newer; run with PYTHON=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

# Migrate, collectstatic, demo data, then broker + gunicorn + Celery worker + beat + outbox relay (scripts/run.py).
# DATABASE_URL, REDIS_URL, KAFKA_BOOTSTRAP_SERVERS, PORT and PGI_VAR_DIR are read from the environment.
run: install
	$(BIN)/python scripts/run.py

# Tests need PostgreSQL and Redis (see TEST_DATABASE_URL, TEST_REDIS_URL); .ci/run starts them.
test: install-dev
	DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/python manage.py collectstatic --noinput -v0
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
		$(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# Every benchmark in bench/ (wrk drives the API when installed), then one table: bench/results/summary-*.md/.json.
bench: install-dev
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var
