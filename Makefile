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

.PHONY: setup test demo train eval quantize qat prune export-tflite export-onnx export-executorch bench compare track clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/fetch_peers.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[train,test,executorch]'
	$(BIN)/python -m pip check
	$(BIN)/python scripts/fetch_peers.py
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q

demo: setup
	$(CLI) demo --out $(DEMO)

train: setup
	$(CLI) train --data $(DATA) --out $(or $(OUT),$(DEMO)/float) $(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(RECIPE_TRAIN),--config $(RECIPE_TRAIN))

eval: setup
	$(CLI) eval --model $(CKPT) --data $(DATA)

# bench: the demo's float checkpoint exported to every format of the export table (fp32 + int8), and
# MediaPipe's face landmark model, at 1 thread and all cores. compare: BUDGET=demo trains fewer models;
# each model's .tflite and .pte pairs are timed in the same run (COMPARE_FORMATS=tflite for LiteRT alone).
BENCH_THREADS ?= all
BUDGET ?= full
COMPARE_FORMATS ?= tflite,executorch
bench: setup
	$(CLI) bench --model $(CKPT) --export default --with-mediapipe --threads $(BENCH_THREADS) --data $(DATA) --out $(or $(OUT),$(DEMO)/bench)

compare: setup
	$(CLI) compare --budget $(BUDGET) --formats $(COMPARE_FORMATS) --out $(or $(OUT),runs/compare)

clean:
	rm -rf runs .pytest_cache

EXPORT_DIR ?= $(DEMO)/export
PTQ        ?= $(DEMO)/compress/ptq_int8/model_int8.pt2
# int8 artifacts come from the PTQ program of `make quantize` when it exists, else PTQ runs inside export.
INT8_SRC   = $(if $(wildcard $(PTQ)),$(PTQ),$(CKPT))

# Compression recipes (recipes/*.yaml); RECIPE= overrides, reports land next to the artifact in OUT.
recipe_or = $(if $(filter command line environment,$(origin RECIPE)),$(RECIPE),$(1))
compress_out = $(or $(OUT),$(DEMO)/compress/$(basename $(notdir $(1))))
quantize: setup
	$(CLI) quantize --recipe $(RECIPE) --model $(CKPT) --data $(DATA) --out $(call compress_out,$(RECIPE))

qat: setup
	$(CLI) quantize --recipe $(call recipe_or,recipes/qat_int8.yaml) --model $(CKPT) --data $(DATA) --out $(call compress_out,$(call recipe_or,recipes/qat_int8.yaml))

prune: setup
	$(CLI) prune --recipe $(call recipe_or,recipes/prune_50.yaml) --model $(CKPT) --data $(DATA) --out $(call compress_out,$(call recipe_or,recipes/prune_50.yaml))

export-tflite: setup
	mkdir -p $(EXPORT_DIR)
	$(CLI) export --model $(CKPT) --format tflite --precision fp32 --data $(DATA) --out $(EXPORT_DIR)/atpn_fp32.tflite
	$(CLI) export --model $(INT8_SRC) --format tflite --precision int8 --data $(DATA) --out $(EXPORT_DIR)/atpn_int8.tflite

export-onnx: setup
	mkdir -p $(EXPORT_DIR)
	$(CLI) export --model $(CKPT) --format onnx --precision fp32 --data $(DATA) --out $(EXPORT_DIR)/atpn_fp32.onnx
	$(CLI) export --model $(CKPT) --format onnx --precision int8 --data $(DATA) --out $(EXPORT_DIR)/atpn_int8.onnx

# ExecuTorch .pte (XNNPACK delegate); int8 lowers the same PT2E program as the int8 .tflite.
export-executorch: setup
	mkdir -p $(EXPORT_DIR)
	$(CLI) export --model $(CKPT) --format executorch --precision fp32 --data $(DATA) --out $(EXPORT_DIR)/atpn_fp32.pte
	$(CLI) export --model $(INT8_SRC) --format executorch --precision int8 --data $(DATA) --out $(EXPORT_DIR)/atpn_int8.pte

# track: the int8 .tflite of `make export-tflite` or of the demo's PTQ when one exists, else the float
# checkpoint; CKPT=... on the command line wins.
TRACK_INPUT ?= synthetic
TRACK_MODEL ?= $(if $(filter command line environment,$(origin CKPT)),$(CKPT),$(or $(firstword $(wildcard $(DEMO)/export/atpn_int8.tflite $(DEMO)/compress/ptq_int8/ptq_int8.tflite)),$(CKPT)))
track: setup
	$(CLI) track $(TRACK_INPUT) --model $(TRACK_MODEL) --threads $(THREADS) --out $(or $(OUT),$(DEMO)/track) $(if $(filter-out synthetic,$(DATA)),--data $(DATA))
