# Two commands set everything up on a fresh machine:
#   make run   - create .venv on first use, install netfast, run the main job on its embedded default
#   make test  - create .venv on first use, install netfast with test extras, install the system
#                tools the tests drive when run as root (scripts/system-deps.sh), run the tests
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,dev,bench]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/netfast forward

# pytest's exit status 5 (no tests collected) is a failure here, not a pass.  A failed install of
# the system tools does not stop the run: the tests that need them skip, and the summary says so.
test: $(STAMP)
	-@bash scripts/system-deps.sh
	$(BIN)/python -m pytest -q $(PYTEST_ARGS); s=$$?; \
	if [ $$s -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$s

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
