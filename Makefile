# hivecall: `make run` serves the hub, `make test` runs the tests, `make check` runs every gate.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run cloud-dev test check lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The LiveKit browser client is built from npm (web/) into static/vendor/; without npm the hub
# still runs (only cloud calls need it). `hivecall worker` runs beside the hub for cloud calls;
# without LiveKit credentials or an OpenAI key it says what is missing and exits at once.
run: $(STAMP)
	-bash scripts/build-web.sh
	$(BIN)/hivecall worker & worker=$$!; trap 'kill $$worker 2>/dev/null' EXIT; $(BIN)/hivecall serve

# Cloud calls on this machine with no LiveKit account: a loopback livekit-server (built once
# with Go; scripts/livekit-server.sh), `hivecall worker` and the hub, with a fresh secret.
cloud-dev: $(STAMP)
	-bash scripts/build-web.sh
	bash scripts/livekit-server.sh install >/dev/null
	export HIVECALL_CLOUD_CALLS=1 LIVEKIT_URL=ws://127.0.0.1:7880 LIVEKIT_API_KEY=devkey \
	  LIVEKIT_API_SECRET=$$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n'); \
	bash scripts/livekit-server.sh run & lk=$$!; \
	$(BIN)/hivecall worker & worker=$$!; \
	trap 'kill $$worker $$lk 2>/dev/null' EXIT; $(BIN)/hivecall serve

# Installs happen outside; the tests run in a loopback-only network namespace (when root), where
# browser tests must run (HIVECALL_TEST_REQUIRE_BROWSER=1 turns their skips into failures).
test: $(STAMP)
	bash scripts/test-deps.sh
	bash scripts/build-web.sh
	HIVECALL_TEST_REQUIRE_BROWSER=$$([ "$$(id -u)" -eq 0 ] && echo 1 || echo 0) \
	  bash scripts/with-netns.sh bash scripts/with-postgres.sh $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

check: lint test

bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
