# Tasks of the template repository; each delegates to dev.py, which needs only Python 3.11+.
.DEFAULT_GOAL := help
PYTHON ?= python3

.PHONY: help demo test docs bench platform-up platform-down

help: ## Show these tasks
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-8s %s\n", $$1, $$2}'

demo: ## Bake a project with the defaults into build/demo and reproduce its pipeline
	$(PYTHON) dev.py demo

test: ## Run the template's tests, slow end-to-end ones included
	$(PYTHON) dev.py test

docs: ## Build the documentation site (strict)
	$(PYTHON) dev.py docs

bench: ## Measure bake -> setup -> repro, no-op repro and stage start-up
	$(PYTHON) dev.py bench

platform-up: ## Start PostgreSQL, S3 (moto) and MLflow on loopback; `source build/platform/env` to use them
	$(PYTHON) dev.py platform up

platform-down: ## Stop the servers of platform-up
	$(PYTHON) dev.py platform down
