# Role-play characters (tools/roleplay/README.md): converters, SFT recipes, chat, LoRA merge,
# regression bank. Included by the Makefile.

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
NOVEL       ?= ../shared/data/novels/shuihuzhuan.txt
ASSISTANT   ?= 武松
ALIASES     ?=
# USER is also the login name in the environment: only a USER given on the command line counts.
DIALOGUE_USERS := $(if $(filter command line,$(origin USER)),$(USER))
USER_ALIASES ?=
DIALOGUE    ?= dialogue
DIALOGUE_ARGS ?=

rolebench: install ## RoleBench JSONL + profiles -> ROLEPLAY_DATA/rolebench_zh.json, registered there
	$(PY) -m tools.roleplay.rolebench --inputs $(ROLEBENCH_INPUTS) --profiles $(PROFILES) \
	  --out-dir $(ROLEPLAY_DATA) --name rolebench_zh --seed $(SEED) $(if $(ROLES),--roles $(ROLES))

character: install ## voice lines + settings -> ROLEPLAY_DATA/CHARACTER_{voice,settings}.json (settings x5)
	$(PY) -m tools.roleplay.character --voice-lines $(VOICE_LINES) --settings $(SETTINGS) --speaker $(SPEAKER) \
	  --out-dir $(ROLEPLAY_DATA) --name $(CHARACTER)

roleplay: tiny-model | $(SFT_READY) ## role-play SFT: llamafactory-cli train ROLEPLAY_RECIPE on DATASET (MODEL, ARGS)
	$(SFT_ENV)/bin/llamafactory-cli train $(ROLEPLAY_RECIPE) model_name_or_path=$(MODEL) \
	  dataset=$(DATASET) dataset_dir=$(ROLEPLAY_DATA) output_dir=$(ROLEPLAY_OUT) \
	  $(if $(filter $(TINY_MODEL),$(MODEL)),$(ROLEPLAY_TINY_ARGS)) $(ARGS)
	@echo "loss plot: $(ROLEPLAY_OUT)/training_loss.png"

dialogue: install ## extract ASSISTANT's dialogue with USER (default: anyone) from NOVEL into RUNS/dialogue/
	$(PY) -m tools.roleplay.dialogue --inputs $(NOVEL) --assistant $(ASSISTANT) $(if $(ALIASES),--assistant-alias $(ALIASES)) \
		$(foreach u,$(DIALOGUE_USERS),--user $(u)) $(foreach a,$(USER_ALIASES),--user-alias $(a)) \
		--out-dir $(RUNS)/dialogue --name $(DIALOGUE) $(DIALOGUE_ARGS)

merge-lora: tiny-model | $(SFT_READY) ## merge LoRA ADAPTER into MODEL, save to EXPORT_DIR (llamafactory-cli export)
	@test -n "$(ADAPTER)" || { echo "make merge-lora: set ADAPTER=<LoRA output dir>" >&2; exit 2; }
	$(SFT_ENV)/bin/llamafactory-cli export --model_name_or_path $(MODEL) --adapter_name_or_path $(ADAPTER) \
		--template $(TEMPLATE) --finetuning_type lora --export_dir $(EXPORT_DIR) $(ARGS)

chat-config: tiny-model ## write CHAT_CONFIG: MODEL (+ ADAPTER) with ROLE's persona as default_system
	$(PY) -m tools.roleplay.persona --role $(ROLE) --profiles $(PROFILES) --write-chat-config $(CHAT_CONFIG) \
		--model $(MODEL) --template $(TEMPLATE) $(if $(ADAPTER),--adapter $(ADAPTER))

chat: chat-config | $(SFT_READY) ## chat with ROLE in the terminal
	$(SFT_ENV)/bin/llamafactory-cli chat $(CHAT_CONFIG) $(ARGS)

webchat: chat-config | $(SFT_READY) ## web chat with ROLE on 127.0.0.1:WEBCHAT_PORT
	GRADIO_SERVER_NAME=127.0.0.1 GRADIO_SERVER_PORT=$(WEBCHAT_PORT) $(SFT_ENV)/bin/llamafactory-cli webchat $(CHAT_CONFIG) $(ARGS)

regress: tiny-model | $(SFT_READY) ## run ROLE's regression bank against ENDPOINT, or MODEL (+ ADAPTER) locally
	$(SFT_PY) -m tools.roleplay.regress --cases $(BANK) --role $(ROLE) --profiles $(PROFILES) \
		$(if $(ENDPOINT),--endpoint $(ENDPOINT),--model $(MODEL) --template $(TEMPLATE) $(if $(ADAPTER),--adapter $(ADAPTER))) \
		--seed $(SEED) --out $(REGRESS_OUT) $(if $(COMPARE),--compare $(COMPARE)) $(REGRESS_ARGS)

.PHONY: regress-leak
regress-leak: install ## check ROLE's bank prompts against the training sets TRAIN (exit 1 when one is found)
	@test -n "$(TRAIN)" || { echo "make regress-leak: set TRAIN='<training set files>'" >&2; exit 2; }
	$(PY) -m tools.roleplay.regress --check-leak --cases $(BANK) --train $(TRAIN) $(REGRESS_ARGS)

# The LoRA merge used to be `make export`, a name SR's data export (sft-data, rl-data) also claims.
.PHONY: merge-lora
export: ## old name of merge-lora: warns, then merges
	@echo "warning: 'make export' is now 'make merge-lora'; the old name will go" >&2
	@$(MAKE) --no-print-directory merge-lora
