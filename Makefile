# The README's two commands: `make demo` and `make test`. Both set everything up first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
# The demo always runs on the embedded default: SQLite and local files, in development mode
# (DJANGO_DEBUG=true: no secret key needed, no HTTPS).
DEMO_ENV := env -u DATABASE_URL -u AWS_STORAGE_BUCKET_NAME -u MEDIA_ROOT DJANGO_DEBUG=true

.PHONY: setup demo test lint bench clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and "fmr needs Python 3.11")'
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

# What CI checks besides the tests: style, the import layering (pyproject.toml's import-linter
# contracts) and that every model change has its migration.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(DEMO_ENV) $(BIN)/python manage.py makemigrations --check --dry-run

# The purge against a raw-SQL floor and the original design (README, "Scale"). Needs
# DATABASE_URL pointing at a PostgreSQL database whose name contains "bench": it is wiped.
# The far-s3 scenario (bench/README.md, "Far S3") runs moto behind the shared latency proxy
# (LATENCY_PROXY, 40 ms round trip, 5 ms/KiB) and reports it against the same purge on loopback.
BENCH_JOBS ?= 5000,100000
BENCH_S3_JOBS ?= 5000
BENCH_ROUNDS ?= 3
bench: setup
	$(BIN)/python bench/purge_bench.py --jobs $(BENCH_JOBS) --rounds $(BENCH_ROUNDS) \
		--s3-jobs $(BENCH_S3_JOBS) --far-jobs $(BENCH_S3_JOBS) --json bench/results/purge.json

clean:
	rm -rf $(VENV) db.sqlite3 media .pytest_cache
