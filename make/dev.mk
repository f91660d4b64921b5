# Checks for developers (tools/dev/README.md): ruff lint, which make test runs first. Included by the Makefile.

.PHONY: lint

lint: install ## ruff check and ruff format --check over the tree (config in pyproject.toml); make test runs it first
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: lint
