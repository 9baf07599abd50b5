# The README's two commands: `make demo` and `make test`. Both set everything up first.
# The default pair: Python 3.11 and Django 5.2 (constraints.txt); the others: constraints/.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
# The demo always runs on the embedded default: SQLite and local files, in development mode
# (DJANGO_DEBUG=true: no secret key needed, no HTTPS).
DEMO_ENV := env -u DATABASE_URL -u AWS_STORAGE_BUCKET_NAME -u MEDIA_ROOT DJANGO_DEBUG=true

.PHONY: setup demo test test-pair lint bench clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13) and "constraints.txt needs Python 3.11 to 3.13 (3.10: make test-pair)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(DEMO_ENV) $(BIN)/python manage.py migrate --verbosity 0
	$(DEMO_ENV) $(BIN)/python manage.py seed_demo_jobs --expired 3 --live 2
	@echo "--- before the purge"
	$(DEMO_ENV) $(BIN)/python manage.py list_jobs
	@echo "--- the purge"
	$(DEMO_ENV) $(BIN)/python manage.py purge_expired_jobs
	@echo "--- after the purge"
	$(DEMO_ENV) $(BIN)/python manage.py list_jobs

# The tests give themselves a test-only secret key (tests/settings.py).
test: setup
	$(BIN)/python -m pytest

# The purge, safety and S3 tests on another supported pair, in its own venv, e.g.
#   make test-pair PY=python3.13 CONSTRAINTS=constraints/py313-django60.txt
# CI runs it for every file in constraints/, each on its own PostgreSQL database (DATABASE_URL).
PAIR_TESTS := tests/test_purge.py tests/test_files.py tests/test_expiry.py tests/test_never_early.py \
	tests/test_clock.py tests/test_stuck.py tests/test_leftovers.py tests/test_run_records.py \
	tests/test_names.py tests/test_fail_closed.py tests/test_resilience.py tests/test_s3.py \
	tests/test_versions.py tests/test_reconcile.py tests/test_plan.py tests/test_key_mapping.py
PAIR_VENV = .venv-$(basename $(notdir $(CONSTRAINTS)))
test-pair:
	@test -n "$(PY)" -a -f "$(CONSTRAINTS)" || { echo "usage: make test-pair PY=python3.X CONSTRAINTS=constraints/FILE.txt"; exit 2; }
	test -x $(PAIR_VENV)/bin/python || $(PY) -m venv $(PAIR_VENV)
	$(PAIR_VENV)/bin/pip install --quiet --disable-pip-version-check -c $(CONSTRAINTS) -e '.[test]'
	$(PAIR_VENV)/bin/python -c 'import sys, django; print("pair: Python", sys.version.split()[0], "Django", django.__version__)'
	$(PAIR_VENV)/bin/python -m pytest -q $(PAIR_TESTS)

# What CI checks besides the tests: style, the import layering (pyproject.toml's import-linter
# contracts) and that every model change has its migration.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(DEMO_ENV) $(BIN)/python manage.py makemigrations --check --dry-run

# The purge against a raw-SQL floor, stock QuerySet.delete() and the original design
# (bench/README.md). Needs DATABASE_URL pointing at a PostgreSQL database whose name contains
# "bench": it is wiped.
# The far-s3 scenario (bench/README.md, "Far S3") runs moto behind the shared latency proxy
# (bench/latency_proxy.py, 40 ms round trip, 5 ms/KiB) and reports it against the same purge on loopback.
BENCH_JOBS ?= 5000,100000
BENCH_S3_JOBS ?= 5000
BENCH_ROUNDS ?= 3
bench: setup
	$(BIN)/python bench/purge_bench.py --jobs $(BENCH_JOBS) --rounds $(BENCH_ROUNDS) \
		--s3-jobs $(BENCH_S3_JOBS) --far-jobs $(BENCH_S3_JOBS) --json bench/results/purge.json

clean:
	rm -rf $(VENV) .venv-py3* db.sqlite3 media .pytest_cache
