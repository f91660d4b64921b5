# Style classifier (tools/style/README.md): train and serve. Included by the Makefile.

# style classifier
STYLE_MODEL ?= $(RUNS)/style-tiny
STYLE_RECIPE ?= recipes/style/tiny_cpu.yaml
STYLE_PORT  ?= 8765

style-train: tiny-model ## train the style classifier from STYLE_RECIPE; ARGS are key=value overrides
	$(PY) -m tools.style train --recipe $(STYLE_RECIPE) $(ARGS)

style-serve: install ## serve STYLE_MODEL on 127.0.0.1:STYLE_PORT (/health, /predict, /predict_batch)
	$(PY) -m tools.style serve --model $(STYLE_MODEL) --port $(STYLE_PORT)
