# Thin wrappers around the `atpn-edge` CLI. Every variable can be overridden: make train EPOCHS=40
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
CLI    := $(BIN)/atpn-edge
STAMP  := $(VENV)/.installed

DEMO   ?= runs/demo
CKPT   ?= $(DEMO)/float/best.pt
DATA   ?= synthetic
OUT    ?=
RECIPE ?= recipes/ptq_int8.yaml
EPOCHS ?=
THREADS ?= 1

.PHONY: setup test demo train eval quantize qat prune export-tflite export-onnx bench compare track clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip check
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q

demo: setup
	$(CLI) demo --out $(DEMO)

train: setup
	$(CLI) train --data $(DATA) --out $(or $(OUT),$(DEMO)/float) $(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(RECIPE_TRAIN),--config $(RECIPE_TRAIN))

eval: setup
	$(CLI) eval --model $(CKPT) --data $(DATA)

clean:
	rm -rf runs .pytest_cache
