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
# is), or checks a user's; `tools.install_env ensure` decides which.
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
# speaker recognition
LABELS     ?= $(RUNS)/$(SERIES)/labels.json
TRACES     ?= $(RUNS)/$(SERIES)/traces.jsonl
SEEDS      ?=
PREPARE_ARGS ?=
TEACHER    ?=
TEACHER_URL ?=
TEACHER_MODEL ?=
PROTOCOL   ?= hermes
WORKERS    ?= 8
SELECT     ?= wrong=1,low_score=1,close=1,confident=0.1
TRACES_ARGS ?=
TRACES_DONE := $(TRACES).done
SPLIT      ?= $(RUNS)/$(SERIES)/split.json
SPLIT_ARGS ?=
SFT_FORMAT ?= alpaca
SFT_DATA   ?= $(RUNS)/$(SERIES)/sft
SFT_NAME   := $(SERIES)_sft_$(SFT_FORMAT)
RECIPE     ?= recipes/sft/speaker_rec_cpu.yaml
OUT        ?= $(RUNS)/$(SERIES)/sft-out
EXPORT_ARGS ?=
# RL (verl GRPO with the tool server)
RL_DATA    ?= $(RUNS)/$(SERIES)/rl
RL_RECIPE  ?= recipes/rl/speaker_rec_grpo.yaml
RL_OUT     ?= $(RUNS)/$(SERIES)/rl-out
RL_MODEL   ?= $(OUT)
RL_EXPORT_ARGS ?=
# hydra overrides of the RL recipe (ARGS is LLaMA-Factory's, and sub-makes of the demo inherit it)
RL_ARGS    ?=
TOOL_SERVER_ARGS ?=
# make rl trains on the SFT output; when it is ours to make, make it first.
RL_MODEL_DEP = $(if $(filter $(OUT),$(RL_MODEL)),$(OUT)/trainer_state.json)
TOOL_HOST  ?= 127.0.0.1
TOOL_PORT  ?= 8100
TOOL_URL   ?=
RAY_NUM_CPUS ?= 8
DRY_RUN    ?=
# serving and evaluation
PORTS      ?= 1-2
BASE_PORT  ?= 8000
SERVE_BACKEND ?= auto
SERVED_NAME ?=
MAX_MODEL_LEN ?= 32768
GPU_MEM_UTIL ?= 0.9
SERVE_ARGS ?=
SERVE_DIR  ?= $(RUNS)/serve
# eval against any OpenAI-compatible base URLs instead of PORTS, e.g. URLS="http://h1:8001/v1 http://h2:8001/v1"
URLS       ?=
EVAL_OUT   ?= $(RUNS)/$(SERIES)/eval/results.jsonl
CONCURRENCY ?= 8
EVAL_ARGS  ?=
REPORT_DIR ?= $(RUNS)/$(SERIES)/report
REPORT_ARGS ?=
# Several series: SERIES=a,b,c, or SERIES=all (every series folder under DATA_DIR), makes eval
# and report run per series, each with its own LABELS and EVAL_OUT (their values with SERIES set to
# the series), and report add an overview of all of them to REPORT_DIR.
comma := ,
SERIES_UNDER_DATA_DIR = $(sort $(notdir $(patsubst %/subtitle_data,%,$(wildcard $(DATA_DIR)/*/subtitle_data))))
SERIES_LIST = $(if $(filter all,$(SERIES)),$(SERIES_UNDER_DATA_DIR),$(subst $(comma), ,$(SERIES)))
MULTI_SERIES = $(or $(findstring $(comma),$(SERIES)),$(filter all,$(SERIES)))
# $(call per_series,VAR): VAR's value for each series of SERIES_LIST, in order.
per_series = $(foreach SERIES,$(SERIES_LIST),$($(1)))
# Refuse a several-series run with no series, or whose series would share one output.
check_series = $(if $(SERIES_LIST),,$(error SERIES=$(SERIES): no series (none under $(DATA_DIR))))$(if \
	$(filter-out $(words $(SERIES_LIST)),$(words $(sort $(SERIES_LIST)))),$(error SERIES=$(SERIES): a series is named twice))$(if \
	$(filter-out $(words $(SERIES_LIST)),$(words $(sort $(call per_series,$(1))))),$(error SERIES=$(SERIES): \
	$(1) must differ per series (use $$(SERIES) in it)))
# The demo's series has 212 lines: blocks of 25 and a 2-line gap give every split part some.
DEMO_SPLIT_ARGS := --block-lines 25 --gap-lines 2
# The tiny model writes nonsense: short turns and few of them keep the demo's eval quick.
DEMO_EVAL_ARGS := --split $(SPLIT) --part eval --max-tokens 16 --max-turns 2
# The report recognises the tiny model (and its warning applies) by this name.
DEMO_SERVED_NAME := tiny-qwen3-sft
# role-play
ROLE        ?= 孙悟空
PROFILES    ?= ../shared/data/rolebench-zh/profiles-zh_desc.json
ADAPTER     ?=
EXPORT_DIR  ?= $(RUNS)/export/merged
CHAT_CONFIG ?= $(RUNS)/chat/$(ROLE).yaml
WEBCHAT_PORT ?= 7860
ENDPOINT    ?=
BANK        ?= data/regression/$(ROLE).jsonl
REGRESS_OUT ?= $(RUNS)/regress/$(ROLE)/results.jsonl
COMPARE     ?=
REGRESS_ARGS ?=
TRAIN       ?=
ROLEPLAY_DATA    ?= $(RUNS)/roleplay-data
ROLEBENCH_DIR    ?= ../shared/data/rolebench-zh
ROLEBENCH_INPUTS ?= $(ROLEBENCH_DIR)/rolebench-zh_role_specific_train.jsonl $(ROLEBENCH_DIR)/rolebench-zh_general_train.jsonl
ROLES            ?=
CHARACTER        ?= furina
SPEAKER          ?= 芙宁娜
VOICE_LINES      ?= ../shared/data/genshin/speaker/furina
SETTINGS         ?= ../shared/data/genshin/settings_furina.json
ROLEPLAY_RECIPE  ?= recipes/roleplay/rolebench_lora.yaml
DATASET          ?= rolebench_zh
ROLEPLAY_OUT     ?= $(RUNS)/roleplay
# The GPU recipes on the tiny model (CPU): fp32, no 4-bit loading, plain AdamW, its own template, 2 steps.
ROLEPLAY_TINY_ARGS := bf16=false quantization_bit=null optim=adamw_torch template=qwen3_nothink max_steps=2 logging_steps=1
STYLE_MODEL ?= $(RUNS)/style-tiny
STYLE_RECIPE ?= recipes/style/tiny_cpu.yaml
STYLE_PORT  ?= 8765
NOVEL       ?= ../shared/data/novels/shuihuzhuan.txt
ASSISTANT   ?= 武松
ALIASES     ?=
# USER is also the login name in the environment: only a USER given on the command line counts.
DIALOGUE_USERS := $(if $(filter command line,$(origin USER)),$(USER))
USER_ALIASES ?=
DIALOGUE    ?= dialogue
DIALOGUE_ARGS ?=
# The demo and tests never reach a model hub; set HF_HUB_OFFLINE=0 to allow downloads.
HF_HUB_OFFLINE ?= 1
export HF_HUB_OFFLINE

.PHONY: help install install-gpu lock upstream-check check-gpu-envs $(INSTALLED) $(SFT_READY) $(RL_READY) tiny-model series-info demo-series prepare traces split sft-data sft sft-smoke demo test bench bench-prepare clean \
	rolebench character roleplay dialogue export chat-config chat webchat regress style-train style-serve \
	rl-data tool-server rl serve stop-serve eval report

help: ## list targets and variables
	@echo "dramakit targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  make %-14s %s\n", $$1, $$2}'
	@echo "variables (current value): SERIES=$(SERIES) DATA_DIR=$(DATA_DIR) MODEL=$(MODEL) RECIPE=$(RECIPE)"
	@echo "  OUT=$(OUT) SEED=$(SEED) VENV=$(VENV) PYTHON=$(PYTHON) ARGS=\"$(ARGS)\" PYTEST_ARGS=\"$(PYTEST_ARGS)\""

install: $(INSTALLED) $(if $(filter cuda,$(DEVICE)),install-gpu) ## build VENV from envs/cpu.lock (DEVICE=cuda: make install-gpu); reruns are instant

install-gpu: ## build the CUDA environments .venv-cuda-sft and .venv-cuda-rl from envs/cuda-*.lock (uv, hashes)
	$(PYTHON) -m tools.install_env install --stack cuda-sft --venv $(if $(filter cuda,$(DEVICE)),$(SFT_ENV),.venv-cuda-sft)
	$(PYTHON) -m tools.install_env install --stack cuda-rl --venv $(if $(filter cuda,$(DEVICE)),$(RL_ENV),.venv-cuda-rl)

$(INSTALLED):
	$(PYTHON) -m tools.install_env ensure --stack $(VENV_STACK) --venv $(VENV)

$(SFT_READY):
	$(PYTHON) -m tools.install_env ensure --stack $(SFT_STACK) --venv $(SFT_ENV)

$(RL_READY):
	$(PYTHON) -m tools.install_env ensure --stack $(RL_STACK) --venv $(RL_ENV)

lock: ## resolve envs/*.lock for Linux x86_64 GPUs on this machine (uv; UPGRADE=1 takes the newest admitted)
	$(PYTHON) -m tools.lock_envs lock $(if $(UPGRADE),--upgrade)

upstream-check: ## newest LLaMA-Factory/verl/vLLM/transformers/torch: resolve, build in .cache, check; changes nothing
	$(PYTHON) -m tools.lock_envs upstream-check

check-gpu-envs: ## in the CUDA environments (built if missing): RL tests, make rl DRY_RUN=1, import vllm; GPU recipes via LLaMA-Factory
	$(PYTHON) -m tools.install_env ensure --stack cuda-rl --venv $(if $(filter cuda,$(DEVICE)),$(RL_ENV),.venv-cuda-rl)
	$(PYTHON) -m tools.install_env ensure --stack cuda-sft --venv $(if $(filter cuda,$(DEVICE)),$(SFT_ENV),.venv-cuda-sft)
	$(PYTHON) -m tools.check_envs --stack cuda-rl --venv $(if $(filter cuda,$(DEVICE)),$(RL_ENV),.venv-cuda-rl) \
		--stack cuda-sft --venv $(if $(filter cuda,$(DEVICE)),$(SFT_ENV),.venv-cuda-sft)

tiny-model: $(TINY_STAMP) ## build the tiny random Qwen3 model into TINY_MODEL (offline, seeded)

$(TINY_STAMP): | $(INSTALLED)
	$(PY) -m tools.tiny_model --out $(TINY_MODEL) --seed $(SEED)

series-info: install ## validate SERIES under DATA_DIR and print its summary
	$(PY) -m tools.series_info --series $(SERIES) --data-dir $(DATA_DIR)

demo-series: install ## regenerate the demo series from its script (deterministic)
	$(PY) -m tools.demo_series --script data/demo/script/chun_jiang.yaml --out data/demo/chun_jiang --seed 0

# ---- speaker recognition ------------------------------------------------------

prepare: $(LABELS) ## label propagation: pseudo-labels, candidate lists, accuracy (-> LABELS)

$(LABELS): | $(INSTALLED)
	$(PY) -m tools.prepare --series $(SERIES) --data-dir $(DATA_DIR) --seed $(SEED) \
		$(if $(SEEDS),--seeds $(SEEDS)) --out $@ $(PREPARE_ARGS)

traces: $(TRACES_DONE) ## teacher trajectories (TEACHER_URL + TEACHER_MODEL, key in OPENAI_API_KEY; or TEACHER=oracle), resumable

# tools.traces resumes and exits non-zero while lines are missing, so the stamp marks a finished run.
$(TRACES_DONE): $(LABELS)
	$(PY) -m tools.traces --series $(SERIES) --data-dir $(DATA_DIR) --labels $(LABELS) --out $(TRACES) \
		$(if $(TEACHER),--teacher $(TEACHER)) $(if $(TEACHER_URL),--teacher-url $(TEACHER_URL)) \
		$(if $(TEACHER_MODEL),--teacher-model $(TEACHER_MODEL)) --protocol $(PROTOCOL) --workers $(WORKERS) \
		--select $(SELECT) --seed $(SEED) $(TRACES_ARGS)
	touch $@

split: $(SPLIT) ## seeded sft / rl_train / rl_val / eval manifest by episode blocks (-> SPLIT)

$(SPLIT): $(LABELS)
	$(PY) -m tools.split --series $(SERIES) --data-dir $(DATA_DIR) --labels $(LABELS) --out $@ --seed $(SEED) $(SPLIT_ARGS)

sft-data: $(SFT_DATA)/$(SFT_NAME).json ## trajectories of the sft part -> LLaMA-Factory dataset (SFT_FORMAT alpaca|sharegpt)

$(SFT_DATA)/$(SFT_NAME).json: $(TRACES_DONE) $(SPLIT)
	$(PY) -m tools.export sft --traces $(TRACES) --split $(SPLIT) --format $(SFT_FORMAT) \
		--out-dir $(SFT_DATA) --name $(SFT_NAME) $(EXPORT_ARGS)

sft: $(OUT)/trainer_state.json ## SR SFT: prepare -> traces -> split -> sft-data -> llamafactory-cli train RECIPE

$(OUT)/trainer_state.json: $(SFT_DATA)/$(SFT_NAME).json $(RECIPE) | $(SFT_READY) $(MODEL_DEP)
	$(SFT_ENV)/bin/llamafactory-cli train $(RECIPE) model_name_or_path=$(MODEL) dataset=$(SFT_NAME) \
		dataset_dir=$(SFT_DATA) output_dir=$(OUT) $(ARGS)
	@echo "loss plot: $(OUT)/training_loss.png"

sft-smoke: tiny-model | $(SFT_READY) ## a few SFT steps with llamafactory-cli on a 20-record sample (SMOKE_RECIPE); ARGS pass through
	$(SFT_ENV)/bin/llamafactory-cli train $(SMOKE_RECIPE) model_name_or_path=$(MODEL) output_dir=$(SMOKE_OUT) $(ARGS)
	@echo "loss plot: $(SMOKE_OUT)/training_loss.png"

rl-data: $(RL_DATA)/train.parquet $(RL_DATA)/val.parquet ## rl_train / rl_val split parts -> verl parquet in RL_DATA

# One export writes both files and rl.report.json.
$(RL_DATA)/train.parquet $(RL_DATA)/val.parquet &: $(SPLIT) $(LABELS)
	$(PY) -m tools.export rl --series $(SERIES) --data-dir $(DATA_DIR) --labels $(LABELS) --split $(SPLIT) \
		--out-dir $(RL_DATA) --seed $(SEED) $(RL_EXPORT_ARGS)

tool-server: $(LABELS) | $(RL_READY) ## serve the SR tools for SERIES on TOOL_HOST:TOOL_PORT (verl-tool wire format); TOOL_SERVER_ARGS
	$(RL_PY) -m plugins.speaker_rec.server --series $(SERIES) --labels $(LABELS) --data-dir $(DATA_DIR) \
		--host $(TOOL_HOST) --port $(TOOL_PORT) $(TOOL_SERVER_ARGS)

rl: $(RL_DATA)/train.parquet $(RL_DATA)/val.parquet $(RL_RECIPE) | $(RL_READY) $(RL_MODEL_DEP) ## GRPO with verl as a Ray job (RL_RECIPE, RL_MODEL; RAY_ADDRESS or a local head); DRY_RUN=1 checks only
	$(RL_PY) -m tools.rl --series $(SERIES) --data-dir $(DATA_DIR) --labels $(LABELS) \
		--train $(RL_DATA)/train.parquet --val $(RL_DATA)/val.parquet --recipe $(RL_RECIPE) \
		--model $(RL_MODEL) --out $(RL_OUT) --tool-host $(TOOL_HOST) --tool-port $(TOOL_PORT) \
		$(if $(TOOL_URL),--tool-url $(TOOL_URL)) --num-cpus $(RAY_NUM_CPUS) $(if $(DRY_RUN),--dry-run) $(RL_ARGS)

# ---- serving and evaluation ----------------------------------------------------

serve: | $(SERVE_READY) $(MODEL_DEP) ## one OpenAI-compatible server per port offset in PORTS on BASE_PORT+i (vLLM per GPU, else llamafactory-cli api)
	$(SERVE_ENV)/bin/python -m tools.serve start --ports $(PORTS) --base-port $(BASE_PORT) --model $(MODEL) --backend $(SERVE_BACKEND) \
		--template $(TEMPLATE) --max-model-len $(MAX_MODEL_LEN) --gpu-mem-util $(GPU_MEM_UTIL) --run-dir $(SERVE_DIR) \
		$(if $(SERVED_NAME),--served-name $(SERVED_NAME)) $(if $(SERVE_ARGS),--server-args="$(SERVE_ARGS)")

stop-serve: ## stop the servers make serve started (by their own pids)
	$(PY) -m tools.serve stop --run-dir $(SERVE_DIR) --base-port $(BASE_PORT)

eval: $(if $(MULTI_SERIES),install,$(LABELS)) ## evaluate the served model on SERIES (a,b,c or all: in turn) over PORTS or URLS -> EVAL_OUT, resumable
ifeq ($(MULTI_SERIES),)
	$(PY) -m tools.eval --series $(SERIES) --data-dir $(DATA_DIR) --labels $(LABELS) --out $(EVAL_OUT) \
		$(if $(URLS),--urls $(URLS),--ports $(PORTS) --base-port $(BASE_PORT)) --protocol $(PROTOCOL) \
		--concurrency $(CONCURRENCY) --seed $(SEED) $(if $(SERVED_NAME),--model $(SERVED_NAME)) $(EVAL_ARGS)
else
	@: $(call check_series,EVAL_OUT)$(call check_series,LABELS)
	@failed=; for series in $(SERIES_LIST); do \
		$(MAKE) --no-print-directory eval SERIES=$$series || failed="$$failed $$series"; done; \
	if [ -n "$$failed" ]; then echo "make eval: not finished for:$$failed (rerun to resume)" >&2; exit 1; fi
endif

report: install ## EVAL_OUT + LABELS -> REPORT_DIR (report.md, report.json, PNG plots; several SERIES: a row each, overall); REPORT_ARGS
ifeq ($(MULTI_SERIES),)
	$(PY) -m tools.report --results $(EVAL_OUT) --labels $(LABELS) --out-dir $(REPORT_DIR) $(REPORT_ARGS)
else
	@: $(call check_series,EVAL_OUT)
	$(PY) -m tools.report --results $(call per_series,EVAL_OUT) --labels $(call per_series,LABELS) \
		--out-dir $(REPORT_DIR) $(REPORT_ARGS)
endif

# The demo's serve -> eval -> report always stops the servers it started, also when eval fails.
demo: series-info ## the end-to-end demo on CPU: prepare, oracle traces, split, export, SFT, RL dry run, serve, eval, report
	$(MAKE) sft TEACHER=oracle SPLIT_ARGS="$(DEMO_SPLIT_ARGS) $(SPLIT_ARGS)"
	$(MAKE) rl DRY_RUN=1 SPLIT_ARGS="$(DEMO_SPLIT_ARGS) $(SPLIT_ARGS)"
	$(MAKE) serve PORTS=1-2 MODEL=$(OUT) SERVED_NAME=$(DEMO_SERVED_NAME)
	$(MAKE) eval PORTS=1-2 CONCURRENCY=2 SERVED_NAME=$(DEMO_SERVED_NAME) EVAL_ARGS="$(DEMO_EVAL_ARGS) $(EVAL_ARGS)" \
		|| { $(MAKE) stop-serve; exit 1; }
	$(MAKE) stop-serve
	$(MAKE) report
	@echo "demo finished: labels $(LABELS), traces $(TRACES) (oracle teacher), split $(SPLIT),"
	@echo "  SFT data $(SFT_DATA), SFT output and loss plot in $(OUT), RL data $(RL_DATA) (dry run),"
	@echo "  eval results $(EVAL_OUT); report: $(REPORT_DIR)/report.md (tiny model: plumbing only)"

# ---- role-play ----------------------------------------------------------------

rolebench: install ## RoleBench JSONL + profiles -> ROLEPLAY_DATA/rolebench_zh.json, registered there
	$(PY) -m tools.rolebench --inputs $(ROLEBENCH_INPUTS) --profiles $(PROFILES) \
	  --out-dir $(ROLEPLAY_DATA) --name rolebench_zh --seed $(SEED) $(if $(ROLES),--roles $(ROLES))

character: install ## voice lines + settings -> ROLEPLAY_DATA/CHARACTER_{voice,settings}.json (settings x5)
	$(PY) -m tools.character --voice-lines $(VOICE_LINES) --settings $(SETTINGS) --speaker $(SPEAKER) \
	  --out-dir $(ROLEPLAY_DATA) --name $(CHARACTER)

roleplay: tiny-model | $(SFT_READY) ## role-play SFT: llamafactory-cli train ROLEPLAY_RECIPE on DATASET (MODEL, ARGS)
	$(SFT_ENV)/bin/llamafactory-cli train $(ROLEPLAY_RECIPE) model_name_or_path=$(MODEL) \
	  dataset=$(DATASET) dataset_dir=$(ROLEPLAY_DATA) output_dir=$(ROLEPLAY_OUT) \
	  $(if $(filter $(TINY_MODEL),$(MODEL)),$(ROLEPLAY_TINY_ARGS)) $(ARGS)
	@echo "loss plot: $(ROLEPLAY_OUT)/training_loss.png"

dialogue: install ## extract ASSISTANT's dialogue with USER (default: anyone) from NOVEL into RUNS/dialogue/
	$(PY) -m tools.dialogue --inputs $(NOVEL) --assistant $(ASSISTANT) $(if $(ALIASES),--assistant-alias $(ALIASES)) \
		$(foreach u,$(DIALOGUE_USERS),--user $(u)) $(foreach a,$(USER_ALIASES),--user-alias $(a)) \
		--out-dir $(RUNS)/dialogue --name $(DIALOGUE) $(DIALOGUE_ARGS)

export: tiny-model | $(SFT_READY) ## merge LoRA ADAPTER into MODEL, save to EXPORT_DIR (llamafactory-cli export)
	@test -n "$(ADAPTER)" || { echo "make export: set ADAPTER=<LoRA output dir>" >&2; exit 2; }
	$(SFT_ENV)/bin/llamafactory-cli export --model_name_or_path $(MODEL) --adapter_name_or_path $(ADAPTER) \
		--template $(TEMPLATE) --finetuning_type lora --export_dir $(EXPORT_DIR) $(ARGS)

chat-config: tiny-model ## write CHAT_CONFIG: MODEL (+ ADAPTER) with ROLE's persona as default_system
	$(PY) -m tools.persona --role $(ROLE) --profiles $(PROFILES) --write-chat-config $(CHAT_CONFIG) \
		--model $(MODEL) --template $(TEMPLATE) $(if $(ADAPTER),--adapter $(ADAPTER))

chat: chat-config | $(SFT_READY) ## chat with ROLE in the terminal
	$(SFT_ENV)/bin/llamafactory-cli chat $(CHAT_CONFIG) $(ARGS)

webchat: chat-config | $(SFT_READY) ## web chat with ROLE on 127.0.0.1:WEBCHAT_PORT
	GRADIO_SERVER_NAME=127.0.0.1 GRADIO_SERVER_PORT=$(WEBCHAT_PORT) $(SFT_ENV)/bin/llamafactory-cli webchat $(CHAT_CONFIG) $(ARGS)

regress: tiny-model | $(SFT_READY) ## run ROLE's regression bank against ENDPOINT, or MODEL (+ ADAPTER) locally
	$(SFT_PY) -m tools.regress --cases $(BANK) --role $(ROLE) --profiles $(PROFILES) \
		$(if $(ENDPOINT),--endpoint $(ENDPOINT),--model $(MODEL) --template $(TEMPLATE) $(if $(ADAPTER),--adapter $(ADAPTER))) \
		--seed $(SEED) --out $(REGRESS_OUT) $(if $(COMPARE),--compare $(COMPARE)) $(REGRESS_ARGS)

.PHONY: regress-leak
regress-leak: install ## check ROLE's bank prompts against the training sets TRAIN (exit 1 when one is found)
	@test -n "$(TRAIN)" || { echo "make regress-leak: set TRAIN='<training set files>'" >&2; exit 2; }
	$(PY) -m tools.regress --check-leak --cases $(BANK) --train $(TRAIN) $(REGRESS_ARGS)

# ---- style classifier ---------------------------------------------------------

style-train: tiny-model ## train the style classifier from STYLE_RECIPE; ARGS are key=value overrides
	$(PY) -m tools.style train --recipe $(STYLE_RECIPE) $(ARGS)

style-serve: install ## serve STYLE_MODEL on 127.0.0.1:STYLE_PORT (/health, /predict, /predict_batch)
	$(PY) -m tools.style serve --model $(STYLE_MODEL) --port $(STYLE_PORT)

# ---- checks -------------------------------------------------------------------

test: install ## run the CPU test suite
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install ## benchmarks, printed as ratios measured in one run
	$(PY) -m tools.bench $(BENCH_DATA_DIRS)

bench-prepare: install ## prepare on every series of BENCH_PREPARE_DIRS: one table beside the published figures, in RUNS/bench_prepare/
	$(PY) -m tools.bench_prepare $(BENCH_PREPARE_DIRS) --out-dir $(RUNS)/bench_prepare \
	  --synthetic-lines $(SYNTHETIC_LINES) --seed $(SEED)

clean: ## remove run outputs and caches (keeps .venv)
	rm -rf $(RUNS) .cache .pytest_cache
