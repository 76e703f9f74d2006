# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= /tmp/datagc-demo

.PHONY: demo test lint bench e2e clean

$(BIN)/datagc: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(BIN)/datagc
	$(BIN)/python -m datagc.demo $(DEMO_DIR)
	$(BIN)/datagc audit --data-dir $(DEMO_DIR)

test: $(BIN)/datagc lint
	$(BIN)/pytest -q -p no:cacheprovider

lint: $(BIN)/datagc
	$(BIN)/ruff check datagc tests bench
	$(BIN)/mypy

bench: $(BIN)/datagc
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info
