# evalhost — the two commands a newcomer types are `make run` and `make test`.
# Everything else here is what they are made of.

BUILD     ?= build
PREFIX    ?= /usr/local
VENV      ?= .venv
PY        := $(VENV)/bin/python
JOBS      ?= $(shell nproc 2>/dev/null || echo 2)
CONFIG    ?= config/example.yaml
SCRIPT    ?= scripts/two_stage.lua
CMAKE_FLAGS ?=

APT_PACKAGES := build-essential cmake pkg-config lua5.4 liblua5.4-dev libcjson-dev \
  libyaml-dev libstb-dev libturbojpeg0-dev libcurl4-openssl-dev libpcre2-dev \
  libwebp-dev libxxhash-dev libutf8proc-dev lua-busted lua-check python3-venv \
  libdeflate-dev chromium fonts-noto-cjk openmpi-bin clang libfuzzer-14-dev openssl

.PHONY: all deps apt venv build run test test-c test-lua lint install clean

all: build

# GPU kit (issue 21): the .deb files and wheels the GPU machine lacks for
# tools/gpu/check.sh, into a git-ignored folder (tools/gpu/kit.sh says what).
GPU_KIT ?= .gpu-kit
.PHONY: gpu-kit gpu-check-dry
gpu-kit:
	tools/gpu/kit.sh $(GPU_KIT)

# check.sh end to end without CUDA: every GPU step says so and is skipped.
gpu-check-dry: gpu-kit
	tools/gpu/check.sh --dry-run

deps: apt venv

# Installs missing Debian packages when we are root; otherwise says what is missing.
apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "deps: installing $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "deps: missing Debian packages (run as root or install them): $$missing" >&2; exit 1; \
	  fi; \
	fi

venv: $(VENV)/.stamp

# tests/e2e/requirements-serve.txt: transformers serve's extra, so that the
# three-route judge test runs a real OpenAI-compatible server on loopback;
# tools/protocols/requirements-official.txt: what the benchmarks' official
# evaluation code imports, so that test_protocols runs it live where a
# checkout or mirror of it is at hand.
VENV_REQS := tools/requirements.txt tests/e2e/requirements-serve.txt tools/protocols/requirements-official.txt
$(VENV)/.stamp: $(VENV_REQS)
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(addprefix -r ,$(VENV_REQS))
	@touch $@

$(BUILD)/CMakeCache.txt: CMakeLists.txt
	cmake -S . -B $(BUILD) -DEVALHOST_WERROR=ON -DEVALHOST_PYTHON=$(abspath $(PY)) $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/evalhost $(SCRIPT) $(CONFIG) --set run.out=outputs/example --resume

test: build test-c test-lua lint

test-c:
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# Debian's busted script starts lua5.1; our library is Lua 5.4.
test-lua:
	lua5.4 /usr/bin/busted --lpath='lua/?.lua;lua/?/init.lua;tests/lua/?.lua' tests/lua

lint:
	luacheck -q lua scripts tests/lua

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

# README's configuration reference from lua/evalhost/schema.lua (after adding a key)
.PHONY: config-doc
config-doc: build
	$(BUILD)/evalhost tools/config_doc.lua --set script.write=README.md

clean:
	rm -rf $(BUILD) outputs

# --- sanitizers and fuzzing (issue 11) ---------------------------------------
# test-asan: the C and end-to-end suite under ASan + UBSan with leak checks, in
# its own tree.  libtorch is left out: its prebuilt libraries are not built
# with ASan and trip the leak checker and the interceptors, so the torch
# backend's tests run only in `make test`.  ctest hands the e2e tests this
# tree's evalhost as EVALHOST_BIN, so they run the sanitized binary too.
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_TIME  ?= 600
SAN_ENV := ASAN_OPTIONS=detect_leaks=1$(if $(wildcard tools/asan.supp),:suppressions=$(abspath tools/asan.supp)) \
  $(if $(wildcard tools/lsan.supp),LSAN_OPTIONS=suppressions=$(abspath tools/lsan.supp)) \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

.PHONY: test-asan fuzz-build fuzz-smoke fuzz

test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DEVALHOST_SANITIZE=ON -DEVALHOST_TORCH=OFF -DEVALHOST_WERROR=ON \
	  -DEVALHOST_PYTHON=$(abspath $(PY)) $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && $(SAN_ENV) ctest --output-on-failure -j $(JOBS)

# The harnesses need clang and libFuzzer (Debian: clang libfuzzer-14-dev).
FUZZERS = $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))

fuzz-build: deps
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -DEVALHOST_FUZZ=ON -DEVALHOST_TORCH=OFF \
	  -DEVALHOST_PYTHON=$(abspath $(PY)) $(CMAKE_FLAGS)
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target $(FUZZERS)

# Each harness over its seeds and regressions for FUZZ_TIME seconds (5 in
# fuzz-smoke; `make fuzz FUZZ_TIME=3600` for longer).  New units go to
# $(FUZZ_BUILD)/corpus/<parser>, never into the committed seeds; a crash
# leaves $(FUZZ_BUILD)/<fuzzer>-crash-<sha1>: replay it with
# `$(FUZZ_BUILD)/<fuzzer> <file>`, fix, and add the file to tests/fuzz/regressions/<parser>/.
fuzz-smoke: FUZZ_TIME = 5
fuzz-smoke fuzz: fuzz-build
	@for f in $(FUZZERS); do p=$${f#fuzz_}; log=$(FUZZ_BUILD)/$$f.log; mkdir -p $(FUZZ_BUILD)/corpus/$$p; \
	  seeds=$$(ls -d tests/fuzz/corpus/$$p tests/fuzz/regressions/$$p 2>/dev/null); \
	  if ! $(SAN_ENV) EVALHOST_SRC=$(CURDIR) $(FUZZ_BUILD)/$$f -max_total_time=$(FUZZ_TIME) -timeout=10 \
	      -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/$$f- \
	      $(FUZZ_BUILD)/corpus/$$p $$seeds >$$log 2>&1; then \
	    tail -n 60 $$log; echo "$$f: FAILED (log: $$log)"; exit 1; fi; \
	  echo "$$f: $$(grep -h '^stat::number_of_executed_units' $$log | tr -dc 0-9) runs in $(FUZZ_TIME) s, no crash"; \
	done
