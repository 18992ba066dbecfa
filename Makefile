# `make repro` and `make test` set everything up on a fresh machine, then run.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: repro test lint bench clean-venv

$(INSTALLED): requirements.txt requirements-dev.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

repro: $(INSTALLED)
	dvc repro

# make turns any failing recipe into exit 2, so pytest's "collected no tests" (exit 5) is named here.
test: $(INSTALLED)
	@status=0; $(PYTHON) -m pytest -q $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -eq 5 ]; then \
	  echo "make test: pytest collected no tests (exit 5): check tests/ and PYTEST_ARGS" >&2; fi; \
	exit $$status

# ruff, configured in pyproject.toml: CI fails on any finding.
lint: $(INSTALLED)
	$(VENV)/bin/ruff check .

bench: $(INSTALLED)
	$(PYTHON) -m bench.throughput
	$(PYTHON) -m bench.time_to_accuracy
	$(PYTHON) -m bench.peak_memory

clean-venv:
	rm -rf $(VENV)
