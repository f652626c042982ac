# Two commands do all the set-up on a fresh machine:
#   make demo   # venv + install, then reconstruct held-out images and sample
#   make test   # venv + install with test extras, then the fast test suite
# DATA points at the converted data sets (see README).

PYTHON ?= python3
VENV ?= .venv
DATA ?= ../shared/datasets
BIN := $(VENV)/bin
export TF_CPP_MIN_LOG_LEVEL := 3
# The tests read the data from here too (tests/real_data.py).
export KERAS_VQVAE_DATA := $(abspath $(DATA))

.PHONY: demo test test-slow test-all lint install

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	# torch pinned to the CPU build; a bare "torch" would pull a CUDA build.
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[tensorflow,jax,torch,test,tfds,speech,video]" tensorboard
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/keras-vqvae demo --data $(DATA)/mnist --out outputs

test: install
	$(BIN)/python -m pytest -q

test-slow: install
	$(BIN)/python -m pytest -q -m slow

test-all: install
	$(BIN)/python -m pytest -q -m ""

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check keras_vqvae
