# dramakit: every job is a target; variables select series, model and options.
# `make help` lists targets and variables. Upstream overrides go through ARGS="key=value ...".

SHELL := /bin/bash
.DEFAULT_GOAL := help

# ---- environment ------------------------------------------------------------
# One environment per upstream stack, each built from its lock in envs/ (see envs/*.toml):
# DEVICE=cpu  (default) one CPU environment, VENV, for everything: make demo, make test;
# DEVICE=cuda SFT_ENV for LLaMA-Factory targets, RL_ENV for verl, the tool server and vLLM;
#             data steps run in VENV, which is then RL_ENV. make install-gpu builds both.
# A folder given for any of them that dramakit did not create is checked and used as is, never modified.
PYTHON     ?= python3
DEVICE     ?= cpu
ifeq ($(DEVICE),cuda)
SFT_ENV    ?= .venv-cuda-sft
RL_ENV     ?= .venv-cuda-rl
VENV       ?= $(RL_ENV)
VENV_STACK := cuda-rl
SFT_STACK  := cuda-sft
RL_STACK   := cuda-rl
else
VENV       ?= .venv
SFT_ENV    ?= $(VENV)
RL_ENV     ?= $(VENV)
VENV_STACK := cpu
SFT_STACK  := cpu
RL_STACK   := cpu
endif
PY         := $(VENV)/bin/python
SFT_PY     := $(SFT_ENV)/bin/python
RL_PY      := $(RL_ENV)/bin/python
# Order-only prerequisites: each builds our own environment or brings it up to date (instant when it
# is), or checks a user's; `tools.dev.install_env ensure` decides which.
INSTALLED  := env-ready
SFT_READY  := sft-env-ready
RL_READY   := rl-env-ready
UPGRADE    ?=
# make serve: vLLM (on GPUs, DEVICE=cuda) runs in RL_ENV, llamafactory-cli api in SFT_ENV.
SERVE_ON_RL = $(if $(filter llamafactory,$(SERVE_BACKEND)),,$(filter cuda,$(DEVICE)))
SERVE_ENV   = $(if $(SERVE_ON_RL),$(RL_ENV),$(SFT_ENV))
SERVE_READY = $(if $(SERVE_ON_RL),$(RL_READY),$(SFT_READY))
# The repository root is on PYTHONPATH: our code is never pip-installed.
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))

# ---- knobs ------------------------------------------------------------------
SERIES     ?= chun_jiang
DATA_DIR   ?= data/demo
SEED       ?= 0
TINY_MODEL ?= .cache/models/tiny-qwen3
MODEL      ?= $(TINY_MODEL)
TINY_STAMP := $(TINY_MODEL)/dramakit_tiny_model.json
# Steps that train need the tiny model only when they train it.
MODEL_DEP   = $(if $(filter $(TINY_MODEL),$(MODEL)),$(TINY_STAMP))
RUNS       ?= runs
SMOKE_OUT  ?= $(RUNS)/sft-smoke
SMOKE_RECIPE ?= recipes/sft/tiny_smoke_cpu.yaml
ARGS       ?=
PYTEST_ARGS ?=
BENCH_DATA_DIRS ?= $(DATA_DIR) ../shared/data/dramasr
# bench-prepare: DATA_DIR when given, else the shared dramas
BENCH_PREPARE_DIRS ?= $(if $(filter command line environment,$(origin DATA_DIR)),$(DATA_DIR),../shared/data/dramasr)
SYNTHETIC_LINES ?= 60000
TEMPLATE   ?= qwen3_nothink
# The demo and tests never reach a model hub; set HF_HUB_OFFLINE=0 to allow downloads.
HF_HUB_OFFLINE ?= 1
export HF_HUB_OFFLINE

.PHONY: help install install-gpu lock upstream-check check-gpu-envs $(INSTALLED) $(SFT_READY) $(RL_READY) tiny-model series-info demo-series prepare traces split sft-data sft sft-smoke demo test bench bench-prepare clean \
	rolebench character roleplay dialogue export chat-config chat webchat regress style-train style-serve \
	rl-data tool-server rl serve stop-serve eval report

help: ## list every target and knob (with its current value), by section
	$(foreach f,$(filter-out make/help.mk,$(MAKEFILE_LIST)),$(call HELP_SECTION,$(f)))
	@:
include make/help.mk make/dev.mk

install: $(INSTALLED) $(if $(filter cuda,$(DEVICE)),install-gpu) ## build VENV from envs/cpu.lock (DEVICE=cuda: make install-gpu); reruns are instant

install-gpu: ## build the CUDA environments .venv-cuda-sft and .venv-cuda-rl from envs/cuda-*.lock (uv, hashes)
	$(PYTHON) -m tools.dev.install_env install --stack cuda-sft --venv $(if $(filter cuda,$(DEVICE)),$(SFT_ENV),.venv-cuda-sft)
	$(PYTHON) -m tools.dev.install_env install --stack cuda-rl --venv $(if $(filter cuda,$(DEVICE)),$(RL_ENV),.venv-cuda-rl)

$(INSTALLED):
	$(PYTHON) -m tools.dev.install_env ensure --stack $(VENV_STACK) --venv $(VENV)

$(SFT_READY):
	$(PYTHON) -m tools.dev.install_env ensure --stack $(SFT_STACK) --venv $(SFT_ENV)

$(RL_READY):
	$(PYTHON) -m tools.dev.install_env ensure --stack $(RL_STACK) --venv $(RL_ENV)

lock: ## resolve envs/*.lock for Linux x86_64 GPUs on this machine (uv; UPGRADE=1 takes the newest admitted)
	$(PYTHON) -m tools.dev.lock_envs lock $(if $(UPGRADE),--upgrade)

upstream-check: ## newest LLaMA-Factory/verl/vLLM/transformers/torch: resolve, build in .cache, check; changes nothing
	$(PYTHON) -m tools.dev.lock_envs upstream-check

check-gpu-envs: ## in the CUDA environments (built if missing): RL tests, make rl DRY_RUN=1, import vllm; GPU recipes via LLaMA-Factory
	$(PYTHON) -m tools.dev.install_env ensure --stack cuda-rl --venv $(if $(filter cuda,$(DEVICE)),$(RL_ENV),.venv-cuda-rl)
	$(PYTHON) -m tools.dev.install_env ensure --stack cuda-sft --venv $(if $(filter cuda,$(DEVICE)),$(SFT_ENV),.venv-cuda-sft)
	$(PYTHON) -m tools.dev.check_envs --stack cuda-rl --venv $(if $(filter cuda,$(DEVICE)),$(RL_ENV),.venv-cuda-rl) \
		--stack cuda-sft --venv $(if $(filter cuda,$(DEVICE)),$(SFT_ENV),.venv-cuda-sft)

tiny-model: $(TINY_STAMP) ## build the tiny random Qwen3 model into TINY_MODEL (offline, seeded)

$(TINY_STAMP): | $(INSTALLED)
	$(PY) -m tools.dev.tiny_model --out $(TINY_MODEL) --seed $(SEED)

series-info: install ## validate SERIES under DATA_DIR and print its summary
	$(PY) -m tools.sr.series_info --series $(SERIES) --data-dir $(DATA_DIR)

demo-series: install ## regenerate the demo series from its script (deterministic)
	$(PY) -m tools.dev.demo_series --script data/demo/script/chun_jiang.yaml --out data/demo/chun_jiang --seed 0

include make/sr.mk

include make/roleplay.mk

include make/style.mk

# ---- checks -------------------------------------------------------------------

test: install ## run the CPU test suite
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install ## benchmarks, printed as ratios measured in one run
	$(PY) -m tools.dev.bench $(BENCH_DATA_DIRS)

bench-prepare: install ## prepare on every series of BENCH_PREPARE_DIRS: one table beside the published figures, in RUNS/bench_prepare/
	$(PY) -m tools.dev.bench_prepare $(BENCH_PREPARE_DIRS) --out-dir $(RUNS)/bench_prepare \
	  --synthetic-lines $(SYNTHETIC_LINES) --seed $(SEED)

clean: ## remove run outputs and caches (keeps .venv)
	rm -rf $(RUNS) .cache .pytest_cache
