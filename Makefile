# dramakit: every job is a target; variables select series, model and options.
# `make help` lists targets and variables. Upstream overrides go through ARGS="key=value ...".

SHELL := /bin/bash
.DEFAULT_GOAL := help

# ---- environment ------------------------------------------------------------
PYTHON     ?= python3
VENV       ?= .venv
PY         := $(VENV)/bin/python
# The repository root is on PYTHONPATH: our code is never pip-installed.
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))

# ---- knobs ------------------------------------------------------------------
SERIES     ?= chun_jiang
DATA_DIR   ?= data/demo
SEED       ?= 0
TINY_MODEL ?= .cache/models/tiny-qwen3
MODEL      ?= $(TINY_MODEL)
RUNS       ?= runs
OUT        ?= $(RUNS)/sft-smoke
RECIPE     ?= recipes/sft/tiny_smoke_cpu.yaml
ARGS       ?=
PYTEST_ARGS ?=
BENCH_DATA_DIRS ?= $(DATA_DIR) ../shared/data/dramasr
# The demo and tests never reach a model hub; set HF_HUB_OFFLINE=0 to allow downloads.
HF_HUB_OFFLINE ?= 1
export HF_HUB_OFFLINE

.PHONY: help install tiny-model series-info demo-series sft-smoke demo test bench clean

help: ## list targets and variables
	@echo "dramakit targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  make %-14s %s\n", $$1, $$2}'
	@echo "variables (current value): SERIES=$(SERIES) DATA_DIR=$(DATA_DIR) MODEL=$(MODEL) RECIPE=$(RECIPE)"
	@echo "  OUT=$(OUT) SEED=$(SEED) VENV=$(VENV) PYTHON=$(PYTHON) ARGS=\"$(ARGS)\" PYTEST_ARGS=\"$(PYTEST_ARGS)\""

install: ## create .venv with the pinned CPU stack (a stamp makes reruns instant)
	$(PYTHON) -m tools.install_env --venv $(VENV)

tiny-model: install ## build the tiny random Qwen3 model into TINY_MODEL (offline, seeded)
	$(PY) -m tools.tiny_model --out $(TINY_MODEL) --seed $(SEED)

series-info: install ## validate SERIES under DATA_DIR and print its summary
	$(PY) -m tools.series_info --series $(SERIES) --data-dir $(DATA_DIR)

demo-series: install ## regenerate the demo series from its script (deterministic)
	$(PY) -m tools.demo_series --script data/demo/script/chun_jiang.yaml --out data/demo/chun_jiang --seed 0

sft-smoke: tiny-model ## a few SFT steps with llamafactory-cli on MODEL; ARGS are key=value overrides
	$(VENV)/bin/llamafactory-cli train $(RECIPE) model_name_or_path=$(MODEL) output_dir=$(OUT) $(ARGS)
	@echo "loss plot: $(OUT)/training_loss.png"

demo: series-info sft-smoke ## the end-to-end demo on the demo series, on CPU
	@echo "demo finished: series $(SERIES) validated, SFT output in $(OUT)"

test: install ## run the CPU test suite
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install ## benchmarks, printed as ratios measured in one run
	$(PY) -m tools.bench $(BENCH_DATA_DIRS)

clean: ## remove run outputs and caches (keeps .venv)
	rm -rf $(RUNS) .cache .pytest_cache
