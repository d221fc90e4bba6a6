# The two commands a new user needs: `make demo` and `make test`.
# Both create .venv with pip when it is missing and install what they need into it.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check

.PHONY: demo test test-slow lint docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, on its own: on machines with a local wheel cache this keeps pip from choosing a
# multi-GB download while it resolves everything else.
$(VENV)/.torch: | $(PY)
	$(PIP) install -q "torch>=2.3" "torchvision>=0.18"
	touch $@

$(VENV)/.demo: pyproject.toml $(VENV)/.torch
	$(PIP) install -q -e ".[demo]"
	touch $@

$(VENV)/.test: pyproject.toml $(VENV)/.torch
	$(PIP) install -q -e ".[test]"
	touch $@ $(VENV)/.demo

demo: $(VENV)/.demo
	$(VENV)/bin/effnet scale --phi 0..7 --mode table
	$(PY) -c "import pathlib, skimage.data as d, PIL.Image as I; p = pathlib.Path('runs/demo-photos'); p.mkdir(parents=True, exist_ok=True); [I.fromarray(getattr(d, n)()).save(p / (n + '.png')) for n in ('coffee', 'chelsea', 'astronaut', 'rocket')]"
	EFFNET_OFFLINE=1 $(VENV)/bin/effnet predict runs/demo-photos --model efficientnet_lite0 --topk 3

test: $(VENV)/.test
	$(PY) -m ruff check .
	$(PY) -m pytest -q -m "not slow"

test-slow: $(VENV)/.test
	$(PY) -m pytest -q -m slow

lint: $(VENV)/.test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

docs: $(VENV)/.test
	$(PY) docs/generate.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
