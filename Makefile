# Every target sets up what it needs on a fresh clone: a virtual environment
# in .venv/ from Python 3.13 (tools/find-python), the pinned dependencies of
# pyproject.toml, and the C extension built in place.
PYTHON  := $(shell tools/find-python)
VENV    := .venv
VPY     := $(VENV)/bin/python
CSRC    := $(wildcard csrc/*.c csrc/*.h)
ASANLIB := build/asan-lib
SETUPTOOLS := $(shell grep -o -m1 'setuptools==[0-9.]*' pyproject.toml)

.PHONY: all demo test types test-c test-py314 wheel wheel-test bench asan clean

all: $(VENV)/.built

$(VENV)/.deps: pyproject.toml
	@test -n "$(PYTHON)" || { echo "no Python 3.13 found" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	@# The build backend first (the pin of pyproject.toml's [build-system]):
	@# the editable install below builds without isolation.
	$(VPY) -m pip install -qq --disable-pip-version-check $(SETUPTOOLS)
	$(VPY) -m pip install -qq --disable-pip-version-check -e '.[dev]' --no-build-isolation
	touch $@

$(VENV)/.built: $(VENV)/.deps $(CSRC) setup.py $(wildcard src/subactor/*.py src/subactor/*/*.py src/subactor/*/*/*.py bench/*.py)
	@mkdir -p build
	@$(VPY) setup.py -q build_ext --inplace > build/build.log 2>&1 || { cat build/build.log; exit 1; }
	$(VPY) -c 'import subactor._ext'
	@# Every actor imports subactor anew; with PYTHONDONTWRITEBYTECODE set
	@# (as on this machine) it would compile the sources each time, and
	@# what the compiler leaves behind stays in each actor (~0.9 MiB per
	@# idle actor when all of its modules are compiled: bench scale counts them).
	$(VPY) -m compileall -q src tests bench
	touch $@

demo: $(VENV)/.built
	$(VPY) -m subactor demo

test: $(VENV)/.built
	@# The multi-host tests make network namespaces with iproute2's `ip`
	@# (as root); Debian's package is installed when it is missing.
	@command -v ip >/dev/null 2>&1 || { test "$$(id -u)" = 0 && command -v apt-get >/dev/null 2>&1 && \
		{ apt-get install -y -q iproute2 >/dev/null 2>&1 || \
		  { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q iproute2 >/dev/null 2>&1; }; }; } || true
	$(VPY) -m pytest -q

# The typing checks alone (also part of `make test`): mypy --strict and
# pyright (basedpyright) on the README example and on programs that use the
# public API, `--verifytypes subactor`, and stubtest on the .pyi stubs.
types: $(VENV)/.built
	$(VPY) -m pytest -q tests/test_types.py tests/test_typed_program.py

# An sdist, a wheel built from it, and that wheel repaired by auditwheel
# into a manylinux one (build/wheelhouse/), as PyPI accepts. `make
# wheel-test` installs it into a clean venv and runs an example and the
# doctor there, with no source tree (tests/test_wheel.py).
wheel: $(VENV)/.deps
	rm -rf build/dist build/wheelhouse
	$(VPY) -m build --no-isolation --outdir build/dist . > build/wheel.log 2>&1 || { cat build/wheel.log; exit 1; }
	PATH=$(abspath $(VENV))/bin:$$PATH $(VPY) -m auditwheel repair --wheel-dir build/wheelhouse build/dist/*.whl >> build/wheel.log 2>&1 || { cat build/wheel.log; exit 1; }
	@ls build/dist/*.tar.gz build/wheelhouse/*.whl

wheel-test: wheel
	SUBACTOR_WHEEL_TEST=1 $(VPY) -m pytest -q tests/test_wheel.py

# The suite on Python 3.14 from Debian's packages, in a Debian sid chroot
# made with debootstrap in build/py314-chroot (needs root; not part of
# `make test`). See tools/py314-chroot.sh.
test-py314:
	tools/py314-chroot.sh test

bench: $(VENV)/.built
	@mkdir -p build
	$(VPY) -m subactor bench --json build/bench-results.json --markdown bench/RESULTS.md

# The test suite against an AddressSanitizer build of the extension. Python
# itself is not instrumented, so libasan is preloaded and pymalloc is off
# so that every Python allocation goes through the checked malloc.
asan: $(VENV)/.deps
	rm -rf build/asan-tmp $(ASANLIB)
	@mkdir -p build
	@SUBACTOR_ASAN=1 $(VPY) setup.py -q build_ext --build-temp build/asan-tmp --build-lib $(ASANLIB) > build/asan-build.log 2>&1 || { cat build/asan-build.log; exit 1; }
	cd src && cp --parents $$(find subactor -name '*.py' -o -name '*.pyi' -o -name py.typed) ../$(ASANLIB)/
	LD_PRELOAD=$$(gcc -print-file-name=libasan.so) PYTHONMALLOC=malloc \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 PYTHONPATH=$(ASANLIB) \
	  SUBACTOR_EXPECT_ASAN=1 $(VPY) -m pytest -q -p no:cacheprovider

clean:
	rm -rf build $(VENV) src/subactor/*.so src/*.egg-info

# Fuzz the codec's decoder for FUZZ_SECONDS: libFuzzer when clang has it,
# else the harness's own mutation driver under gcc; ASan and UBSan either way.
FUZZ_SECONDS ?= 60
.PHONY: fuzz
fuzz: $(VENV)/.built
	tools/fuzz/run.sh $(FUZZ_SECONDS)
