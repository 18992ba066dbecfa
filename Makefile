# `make repro` and `make test` set everything up on a fresh machine, then run.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: repro test test-fast lint mutate bench study clean-venv

# The project itself goes in editable (its code is this folder), so `mnist-dvc` runs from anywhere.
$(INSTALLED): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

repro: $(INSTALLED)
	dvc repro

# The study (study.yaml), detached: it outlives this shell, at nice 10 in its own session (so its
# own autogroup), logging to study.log. Stop it with kill -- -PID (the PID it prints).
study: $(INSTALLED)
	@setsid nohup nice -n 10 $(PYTHON) -m commands.study run >> study.log 2>&1 < /dev/null & \
	pid=$$!; sleep 1; echo 10 > /proc/$$pid/autogroup 2>/dev/null || true; \
	echo "study: running as process group $$pid (log: study.log; stop: kill -- -$$pid)"

# Tests run in parallel (pytest-xdist), one worker per core, each file whole on one worker (its
# module fixtures built once), handed out longest first (tests/file_order.py; xdist's own order
# puts the files with most tests first); TEST_JOBS=0 runs them in one process (for pdb, -x).
# make turns any failing recipe into exit 2, so pytest's "collected no tests" (exit 5) is named here.
TEST_JOBS ?= auto
define run_pytest
	@status=0; $(PYTHON) -m pytest -q -n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder $(1) $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -eq 5 ]; then \
	  echo "make $@: pytest collected no tests (exit 5): check tests/ and PYTEST_ARGS" >&2; fi; \
	exit $$status
endef

test: $(INSTALLED)
	$(call run_pytest,)

# The edit loop: everything but the end-to-end tests (marked e2e: DVC repos built and run) and
# the slow ones (marked slow: statistical checks on real models, torchrun pairs, the browser).
test-fast: $(INSTALLED)
	$(call run_pytest,-m "not e2e and not slow")

# Mutation testing (configured in pyproject.toml [tool.mutmut]; scores in docs/testing.md). Not in
# CI: CPU-heavy. MUTANTS narrows it to some mutants, e.g. make mutate MUTANTS='mnist_dvc.study*'.
mutate: $(INSTALLED)
	$(VENV)/bin/mutmut run --max-children $(or $(JOBS),2) $(MUTANTS)
	$(VENV)/bin/mutmut results

# ruff, configured in pyproject.toml: CI fails on any finding.
lint: $(INSTALLED)
	$(VENV)/bin/ruff check .

bench: $(INSTALLED)
	$(PYTHON) -m bench.throughput
	$(PYTHON) -m bench.time_to_accuracy
	$(PYTHON) -m bench.peak_memory

clean-venv:
	rm -rf $(VENV)
