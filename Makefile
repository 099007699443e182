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

.PHONY: install demo test test-slow test-browser lint bench bench-ablations clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH_PIN)
	$(PIP) install --quiet -e ".[dev,fingerspelling]"
	touch $(STAMP)

# `make demo` signs a sentence with Stable Signer loaded by repo id (hf-sign/stable-signer-synthsign) from the
# Hugging Face cache. The first run builds SynthSign into $(DATA_DIR), trains the `demo` config into
# outputs/stable-signer-demo (minutes on 2 CPU cores; an interrupted run continues from its checkpoints) and
# caches the pipeline under that repo id; later runs reuse the cache (seconds).
# Outputs: $(DEMO_DIR)/<sentence>.gif, .mp4, .pose and <sentence>-vs-nearest.mp4. `hf-sign demo --retrain` trains again.
DATA_DIR ?= outputs/synthsign

demo: install
	$(VENV)/bin/hf-sign demo --data-dir $(DATA_DIR) --out $(DEMO_DIR)

# ruff first (CI enforces the conventions), then the default suite
test: install
	$(VENV)/bin/ruff check src tests benchmarks pipelines
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-slow: install
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

# The Gradio Space in headless Chromium (opt-in; prints the screenshot's path). Debian's chromium and
# chromium-driver are installed first when missing (apt-get, through sudo when not root).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
test-browser: install
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		($(SUDO) apt-get update && $(SUDO) apt-get install -y chromium chromium-driver)
	$(PY) -m pytest -q -s -m browser tests/test_space_browser.py $(PYTEST_ARGS)

# ruff, configured in pyproject.toml (line length 119; pycodestyle, pyflakes, import order)
lint: install
	$(VENV)/bin/ruff check src tests benchmarks pipelines

# Speed benchmarks (minutes). The ablation study trains 8 models (hours on a CPU): its own target.
bench: install
	$(PY) benchmarks/bench_dtw.py
	$(PY) benchmarks/bench_sign_sald_speed.py

bench-ablations: install
	$(PY) benchmarks/bench_sign_sald_ablations.py --config small

clean:
	rm -rf $(VENV) outputs
