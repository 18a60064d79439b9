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
  libwebp-dev libxxhash-dev lua-busted lua-check python3-venv

.PHONY: all deps apt venv build run test test-c test-lua lint install clean

all: build

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

$(VENV)/.stamp: tools/requirements.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r tools/requirements.txt
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

clean:
	rm -rf $(BUILD) outputs
