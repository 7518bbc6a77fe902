# The two commands a newcomer needs (see README.md):
#   make test   install missing Debian packages, build, run every test
#   make run    install, build, run the main job: the benchmarks' quick run (pagewire-bench --quick)
PRESET ?= default
BUILD  := build/$(PRESET)
JOBS   ?= $(shell nproc)

.PHONY: all deps configure build test run asan clean

all: build

deps:
	@./scripts/install-deps.sh

$(BUILD)/build.ninja: CMakeLists.txt CMakePresets.json | deps
	cmake --preset $(PRESET)

configure: deps $(BUILD)/build.ninja

build: configure
	cmake --build --preset $(PRESET) -j $(JOBS)

test: build
	ctest --preset $(PRESET) -j $(JOBS)

run: build
	$(BUILD)/bin/pagewire-bench --quick --json $(BUILD)/bench.json

asan:
	$(MAKE) test PRESET=asan

clean:
	rm -rf build
