# Two commands do all the set-up on a fresh machine:
#   make demo   create/reuse .venv, install the package, run the demo (codec round trip, clone, create)
#   make test   create/reuse .venv, install the package with every extra, run the test suite
# MODEL=path/to/Spark-TTS-0.5B picks the release for the demo (downloaded there when online).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt
MODEL ?= pretrained_models/Spark-TTS-0.5B
OUT ?= outputs/demo
PYTEST_ARGS ?=

.PHONY: demo test lint install install-dev clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, pinned, so nothing else can pull in another build.
$(VENV)/.core-installed: pyproject.toml constraints.txt | $(PY)
	$(PIP) torch==2.14.1
	$(PIP) -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.core-installed pyproject.toml constraints.txt requirements-test.txt
	$(PIP) torchaudio==2.11.0
	$(PIP) -e ".[eval,notebook,dev,train]"
	$(PIP) -r requirements-test.txt
	touch $@

install: $(VENV)/.core-installed
install-dev: $(VENV)/.dev-installed

demo: $(VENV)/.core-installed
	HF_HUB_DOWNLOAD_TIMEOUT=30 $(PY) -m sparktts.demo --model_dir "$(MODEL)" --out "$(OUT)"

test: $(VENV)/.dev-installed
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check sparktts tests eval benchmarks

clean:
	rm -rf $(VENV) outputs .pytest_cache
