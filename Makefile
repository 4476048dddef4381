# Every target creates its own virtualenv and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast lint typecheck venv lock clean bench soak chaos

# Every dependency, transitive ones included, comes from requirements.lock with its
# SHA-256; the project itself is installed on top without touching them.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==26.3
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

# Regenerate requirements.lock after changing a pin in pyproject.toml.
lock:
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet pip-tools==7.6.2
	.lock-venv/bin/pip-compile --quiet --generate-hashes --allow-unsafe --extra dev \
	    --strip-extras --no-emit-index-url --no-emit-find-links \
	    --output-file requirements.lock pyproject.toml
	rm -rf .lock-venv

lint: $(STAMP)
	$(BIN)/ruff check sidecar tests docker $(wildcard bench)
	$(BIN)/ruff format --check sidecar tests docker $(wildcard bench)

typecheck: $(STAMP)
	$(BIN)/mypy --strict

# The whole suite, slow tests included (what CI runs).
test: lint typecheck
	$(BIN)/pytest -n 2

# Everything but the tests marked slow (the multi-day simulations), for quick iterations.
test-fast: lint typecheck
	$(BIN)/pytest -n 2 -m "not slow"

# OpenBao, the emulator and the daemon for 48 emulated hours (about a minute),
# with CI runs through the plugin and the resolver; `azsidecar demo --help`.
demo: $(STAMP)
	$(BIN)/azsidecar demo

# Ten real minutes of the demo's set-up with AppRole tokens of 30 s (90 s at most) for every
# component, the resolver's TLS certificate replaced every 3 minutes and a JWT per run; prints
# failed runs and operations, renewals and logins, and RSS / open fds of every process.
soak: $(STAMP)
	$(BIN)/azsidecar soak --minutes 10 --token-ttl 30s --token-max-ttl 90s --cert-every 3m

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# Benchmarks (about 17 minutes): one table, bench/results/results.json, PNG plots,
# and the README's results section regenerated from the JSON.
bench: $(STAMP)
	$(BIN)/python -m bench --out bench/results --update-readme README.md

# Randomised fault schedules (#21): 20 seeds of 7 emulated days each on the real processes
# (about 8 real minutes a seed), with the invariant checker watching; figures to
# bench/results/chaos.json and the README's chaos section. SEEDS / DAYS / JOBS override.
SEEDS ?= 20
DAYS  ?= 7
JOBS  ?= 1
chaos: $(STAMP)
	$(BIN)/python -m bench.chaos --seeds 1 --count $(SEEDS) --days $(DAYS) --jobs $(JOBS) \
	    --out bench/results/chaos.json --update-readme README.md
