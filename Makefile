# The README's two commands: `make demo` and `make test`. Both set up .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test check lint typecheck unit bench bench-scale bench-tools fuzz docs clean

$(STAMP): pyproject.toml setup.py squirrel/plumbing/_folderstat.c squirrel/plumbing/_copygroup.c squirrel/plumbing/_place.c
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m compileall -q squirrel >/dev/null
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash demo/demo.sh

test: check unit

check: lint typecheck

lint: $(STAMP)
	$(PY) -m ruff check squirrel tests bench
	$(PY) -m ruff format --check squirrel tests bench

typecheck: $(STAMP)
	$(PY) -m mypy

# One test process per core (pytest-xdist): the random histories take minutes.
unit: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -n auto

# Hostile bundles at scale: 100,000 seeded byte mutations plus structural ones (minutes).
fuzz: $(STAMP)
	SQ_FUZZ_CASES=100000 PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest tests/fuzz -q

# Rewrite the `--help` blocks of docs/commands.md from the code (tests/gen_help.py).
docs: $(STAMP)
	$(PY) -m tests.gen_help

bench: $(STAMP) bench-tools
	$(PY) -m compileall -q squirrel >/dev/null  # time sq, not the compiling of its source
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash bench/run.sh

# A million files (bench/bench_scale.py): about 12 GiB of disk and 20 minutes
# on 2 quiet cores (an hour when other work shares them); writes its figures
# and the machine to docs/scale.md.
bench-scale: $(STAMP) bench-tools
	$(PY) -m compileall -q squirrel >/dev/null
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/bench_scale.py --write docs/scale.md

# The baselines the benchmarks compare with.
bench-tools:
	@command -v rsync >/dev/null && command -v git >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq rsync git >/dev/null; }

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
