# Everything runs inside .venv. `make test` / `make demo` set it up on a fresh machine;
# a stamp file makes the install idempotent and fast once done.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.hf-sign-installed
# CPU wheel of torch; a looser pin would pull several GB of CUDA packages.
TORCH_PIN := torch==2.13.0
DEMO_DIR ?= outputs/demo
PYTEST_ARGS ?=

.PHONY: install demo test test-slow bench bench-ablations clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH_PIN)
	$(PIP) install --quiet -e ".[dev,fingerspelling]"
	touch $(STAMP)

# Until a generator model lands, the demo builds the embedded SynthSign corpus once (cached in
# outputs/synthsign) and renders one test sentence to a GIF and a .pose file.
DATA_DIR ?= outputs/synthsign

$(DATA_DIR)/README.md: | $(STAMP)
	$(VENV)/bin/hf-sign data synthsign --out $(DATA_DIR)

demo: install $(DATA_DIR)/README.md
	$(VENV)/bin/hf-sign render $(DATA_DIR) --split test --index 0 --out $(DEMO_DIR)/test-0.gif
	$(VENV)/bin/hf-sign render $(DATA_DIR) --split test --index 0 --out $(DEMO_DIR)/test-0.pose

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-slow: install
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

# Speed benchmarks (minutes). The ablation study trains 8 models (hours on a CPU): its own target.
bench: install
	$(PY) benchmarks/bench_dtw.py
	$(PY) benchmarks/bench_sign_sald_speed.py

bench-ablations: install
	$(PY) benchmarks/bench_sign_sald_ablations.py --config small

clean:
	rm -rf $(VENV) outputs
