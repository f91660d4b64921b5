# Speaker recognition (tools/sr/README.md): prepare -> traces -> split -> export -> sft / rl
# -> serve -> eval -> report, and the end-to-end demo. Included by the Makefile.

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

prepare: $(LABELS) ## label propagation: pseudo-labels, candidate lists, accuracy (-> LABELS)

$(LABELS): | $(INSTALLED)
	$(PY) -m tools.sr.prepare --series $(SERIES) --data-dir $(DATA_DIR) --seed $(SEED) \
		$(if $(SEEDS),--seeds $(SEEDS)) --out $@ $(PREPARE_ARGS)

traces: $(TRACES_DONE) ## teacher trajectories (TEACHER_URL + TEACHER_MODEL, key in OPENAI_API_KEY; or TEACHER=oracle), resumable

# tools.sr.traces resumes and exits non-zero while lines are missing, so the stamp marks a finished run.
$(TRACES_DONE): $(LABELS)
	$(PY) -m tools.sr.traces --series $(SERIES) --data-dir $(DATA_DIR) --labels $(LABELS) --out $(TRACES) \
		$(if $(TEACHER),--teacher $(TEACHER)) $(if $(TEACHER_URL),--teacher-url $(TEACHER_URL)) \
		$(if $(TEACHER_MODEL),--teacher-model $(TEACHER_MODEL)) --protocol $(PROTOCOL) --workers $(WORKERS) \
		--select $(SELECT) --seed $(SEED) $(TRACES_ARGS)
	touch $@

split: $(SPLIT) ## seeded sft / rl_train / rl_val / eval manifest by episode blocks (-> SPLIT)

$(SPLIT): $(LABELS)
	$(PY) -m tools.sr.split --series $(SERIES) --data-dir $(DATA_DIR) --labels $(LABELS) --out $@ --seed $(SEED) $(SPLIT_ARGS)

sft-data: $(SFT_DATA)/$(SFT_NAME).json ## trajectories of the sft part -> LLaMA-Factory dataset (SFT_FORMAT alpaca|sharegpt)

$(SFT_DATA)/$(SFT_NAME).json: $(TRACES_DONE) $(SPLIT)
	$(PY) -m tools.sr.export sft --traces $(TRACES) --split $(SPLIT) --format $(SFT_FORMAT) \
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
	$(PY) -m tools.sr.export rl --series $(SERIES) --data-dir $(DATA_DIR) --labels $(LABELS) --split $(SPLIT) \
		--out-dir $(RL_DATA) --seed $(SEED) $(RL_EXPORT_ARGS)

tool-server: $(LABELS) | $(RL_READY) ## serve the SR tools for SERIES on TOOL_HOST:TOOL_PORT (verl-tool wire format); TOOL_SERVER_ARGS
	$(RL_PY) -m plugins.speaker_rec.server --series $(SERIES) --labels $(LABELS) --data-dir $(DATA_DIR) \
		--host $(TOOL_HOST) --port $(TOOL_PORT) $(TOOL_SERVER_ARGS)

rl: $(RL_DATA)/train.parquet $(RL_DATA)/val.parquet $(RL_RECIPE) | $(RL_READY) $(RL_MODEL_DEP) ## GRPO with verl as a Ray job (RL_RECIPE, RL_MODEL; RAY_ADDRESS or a local head); DRY_RUN=1 checks only
	$(RL_PY) -m tools.sr.rl --series $(SERIES) --data-dir $(DATA_DIR) --labels $(LABELS) \
		--train $(RL_DATA)/train.parquet --val $(RL_DATA)/val.parquet --recipe $(RL_RECIPE) \
		--model $(RL_MODEL) --out $(RL_OUT) --tool-host $(TOOL_HOST) --tool-port $(TOOL_PORT) \
		$(if $(TOOL_URL),--tool-url $(TOOL_URL)) --num-cpus $(RAY_NUM_CPUS) $(if $(DRY_RUN),--dry-run) $(RL_ARGS)

# ---- serving and evaluation

serve: | $(SERVE_READY) $(MODEL_DEP) ## one OpenAI-compatible server per port offset in PORTS on BASE_PORT+i (vLLM per GPU, else llamafactory-cli api)
	$(SERVE_ENV)/bin/python -m tools.sr.serve start --ports $(PORTS) --base-port $(BASE_PORT) --model $(MODEL) --backend $(SERVE_BACKEND) \
		--template $(TEMPLATE) --max-model-len $(MAX_MODEL_LEN) --gpu-mem-util $(GPU_MEM_UTIL) --run-dir $(SERVE_DIR) \
		$(if $(SERVED_NAME),--served-name $(SERVED_NAME)) $(if $(SERVE_ARGS),--server-args="$(SERVE_ARGS)")

stop-serve: ## stop the servers make serve started (by their own pids)
	$(PY) -m tools.sr.serve stop --run-dir $(SERVE_DIR) --base-port $(BASE_PORT)

eval: $(if $(MULTI_SERIES),install,$(LABELS)) ## evaluate the served model on SERIES (a,b,c or all: in turn) over PORTS or URLS -> EVAL_OUT, resumable
ifeq ($(MULTI_SERIES),)
	$(PY) -m tools.sr.evaluate --series $(SERIES) --data-dir $(DATA_DIR) --labels $(LABELS) --out $(EVAL_OUT) \
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
	$(PY) -m tools.sr.report --results $(EVAL_OUT) --labels $(LABELS) --out-dir $(REPORT_DIR) $(REPORT_ARGS)
else
	@: $(call check_series,EVAL_OUT)
	$(PY) -m tools.sr.report --results $(call per_series,EVAL_OUT) --labels $(call per_series,LABELS) \
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
