# Included by the main Makefile: the API's entry points. Uses its PYTHON and SETUP_STAMP.
.PHONY: run bench

DEMO_DATA := data/demo-interactions.parquet
# ./models stands in for the EFS volume: versions side by side and a `current` symlink.
DEMO_MODEL_DIR := models
DEMO_MODEL := $(DEMO_MODEL_DIR)/current/manifest.json
UWSGI := $(dir $(PYTHON))uwsgi
RUN_BIND ?= 127.0.0.1:8080
RUN_WORKERS ?= 2

$(DEMO_DATA): api/synthetic.py | $(SETUP_STAMP)
	$(PYTHON) -m api.synthetic --out $@ --users 5000 --items 3000 --segments 12 --seed 7

# Retrained only when the data or the trainer changes; each training publishes a new version and switches current.
$(DEMO_MODEL): $(DEMO_DATA) api/train.py api/model_format.py | $(SETUP_STAMP)
	$(PYTHON) -m api.train --interactions $(DEMO_DATA) --model-dir $(DEMO_MODEL_DIR) --factors 32 --iterations 15

run: $(DEMO_MODEL) | $(SETUP_STAMP)
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

bench: | $(SETUP_STAMP)
	$(PYTHON) -m bench.serving
