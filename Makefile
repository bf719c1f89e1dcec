# sleeptrack — every target sets up what it needs; `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_WORKERS ?= 2

.PHONY: help install install-dev system-deps demo test lint typecheck pytest audit bench model sim-model clean

help:
	@echo "make demo   - install and run the demo (simulate a night, track it, print the report)"
	@echo "make test   - install and run ruff, mypy and the whole test suite"
	@echo "make bench  - run the benchmarks and print their figures"
	@echo "make model  - retrain the default model (sleeptrack train)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The runtime install: SDK, engine, server and plots.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[server,plot,train]'
	touch $@

# Everything, test and lint tools included.
$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed-run

install: $(VENV)/.installed-run
install-dev: $(VENV)/.installed-dev system-deps

# Debian packages the tests need (headless Chromium for the dashboard tests).
system-deps:
	@bash scripts/system-deps.sh

demo: install
	$(BIN)/sleeptrack demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

pytest: install-dev
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup

# Known vulnerabilities in the installed dependencies (pip-audit); says so when the service is unreachable.
audit: $(VENV)/.installed-dev
	$(BIN)/python scripts/audit.py

# Lint and audit first (seconds), then mypy in the background while pytest uses the cores.
test: install-dev lint audit
	@$(BIN)/mypy > .mypy.log 2>&1 & mypy_pid=$$!; \
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup; pytest_rc=$$?; \
	wait $$mypy_pid; mypy_rc=$$?; cat .mypy.log; rm -f .mypy.log; \
	if [ $$pytest_rc -ne 0 ] || [ $$mypy_rc -ne 0 ]; then \
		echo "pytest exit $$pytest_rc, mypy exit $$mypy_rc"; exit 1; fi

# SLEEPTRACK_SOAK_SECONDS sets the scale-out soak (default 600 s); the fuzzing runs 100 examples per operation.
bench: install-dev
	$(BIN)/python -m benchmarks
	SLEEPTRACK_FUZZ_EXAMPLES=100 $(BIN)/pytest -q tests/hardening/test_fuzz.py

model: install
	$(BIN)/sleeptrack train

# Refit the semi-Markov hypnogram model the simulator uses when ../shared/data is absent.
sim-model: install
	$(BIN)/sleeptrack simulate --fit-hypnogram-model

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist
