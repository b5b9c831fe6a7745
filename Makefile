# Schleuse — one command to run, one to test. See README.md.
SHELL := /bin/bash
PY_BOOT ?= python3
UV_VERSION := 0.13.8
TOOLS := .dev/tools
UV := $(TOOLS)/bin/uv
PY := .venv/bin/python

.PHONY: install run test test-unit lint fmt migrate bench clean

$(UV):
	@mkdir -p .dev
	$(PY_BOOT) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

## install: create .venv from the committed lock file (make run and make test call it)
install: $(UV)
	$(UV) sync --frozen --all-packages
	@$(MAKE) --no-print-directory -s models

## models: build shipped model artefacts that are missing (the DLP NER model is committed; this rebuilds it
## from ../shared/dlp-data when it is absent)
models:
	$(PY) -m schleuse_dlp.training --if-missing

## run: start infrastructure (found or embedded), migrate, start all services, seed, print URL
run: install
	$(PY) -m schleuse_common.devrun run

## test: the whole suite (unit, integration, e2e) against real NATS, Postgres and Redis
test: install
	$(PY) -m pytest -q

## lint: ruff (lint + format check) and mypy
lint: install
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy libs/common/schleuse_common $(wildcard services/*/schleuse_*/domain)

fmt: install
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

## migrate: apply every service's migrations to the configured database
migrate: install
	$(PY) -m schleuse_common.devrun migrate

## bench: the hot paths, each printing its figures (see README)
bench: install
	$(PY) bench/gateway_overhead.py
	$(PY) bench/dlp_eval.py bench/data/germeval_dev_holdout.jsonl
	$(PY) bench/dlp_eval.py bench/data/synth_de_test.jsonl
	$(PY) bench/ingest.py --calls 100000

clean:
	rm -rf .venv .dev
