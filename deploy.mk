# Deploy tooling: the dev stack applied to moto on loopback, and the GitHub Actions workflows' linter.
# Included by the Makefile (`-include deploy.mk`); uses its SETUP_STAMP and PYTHON.

ACTIONLINT_VENV := .cache/tools/actionlint
ACTIONLINT := $(ACTIONLINT_VENV)/bin/actionlint

# make deploy-local   apply the dev stack to moto on 127.0.0.1, check the second plan, destroy (KEEP=1 keeps it)
# make destroy-local  destroy a deployment kept with KEEP=1 and stop its moto_server
# make actionlint     lint .github/workflows (actionlint + shellcheck, own tool environment)
# make train-remote ENV=dev  run the training task once in AWS (network from the stack outputs), wait for its exit code
.PHONY: deploy-local destroy-local actionlint train-remote
ENV ?= dev

train-remote: $(SETUP_STAMP)
	$(PYTHON) -m tools.train_remote --env $(ENV)

deploy-local: $(SETUP_STAMP)
	$(PYTHON) -m tools.deploy_local deploy $(if $(filter 1 yes true,$(KEEP)),--keep,)

destroy-local: $(SETUP_STAMP)
	$(PYTHON) -m tools.deploy_local destroy

$(ACTIONLINT): tools/actionlint-requirements.txt
	python3 -m venv --clear $(ACTIONLINT_VENV)
	$(ACTIONLINT_VENV)/bin/pip install --quiet --only-binary=:all: -r tools/actionlint-requirements.txt
	cp tools/actionlint-requirements.txt $(ACTIONLINT_VENV)/.requirements
	touch $@

actionlint: $(ACTIONLINT)
	$(ACTIONLINT) -no-color -shellcheck $(ACTIONLINT_VENV)/bin/shellcheck .github/workflows/*.yml
