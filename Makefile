# The two commands a newcomer needs (see README.md):
#   make test   install missing Debian packages, build, run every test
#   make run    install, build, run the main job: the benchmarks' quick run (pagewire-bench --quick)
# and for packagers:
#   make deb    build, then build/$(PRESET)/pagewire_<version>_<arch>.deb (CPack)
# PRESET=name picks a preset of CMakePresets.json (default, asan, tsan, release,
# clang, debian); PRESET=debian builds with dpkg-buildflags' flags, exported here.
PRESET ?= default
BUILD  := build/$(PRESET)
JOBS   ?= $(shell nproc)

.PHONY: all deps configure build test run asan deb clean

ifeq ($(PRESET),debian)
# As dh_auto_configure does: CPPFLAGS go with CXXFLAGS (CMake reads no CPPFLAGS).
# The preset passes them on; they matter at the first configure only.
export CPPFLAGS := $(shell dpkg-buildflags --get CPPFLAGS)
export CXXFLAGS := $(shell dpkg-buildflags --get CXXFLAGS)
export LDFLAGS  := $(shell dpkg-buildflags --get LDFLAGS)
endif

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

deb: build
	cd $(BUILD) && cpack -G DEB

asan:
	$(MAKE) test PRESET=asan

clean:
	rm -rf build
