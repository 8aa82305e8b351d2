# l2tpfast developer commands. `make test` works on a fresh Debian machine as root.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: help system-deps venv install compile debug test test-debug lint bench bench-compare demo wheel wheel-check clean

help:
	@echo "make test        install system packages, venv, package + test extras; run the whole suite"
	@echo "make test-debug  rebuild with bounds checks and run the compiled-code tests again"
	@echo "make compile     build the Cython modules in place (optimised)"
	@echo "make debug       build them in place with bounds checks, line tracing, annotate HTML"
	@echo "make lint        ruff, mypy --strict, cython-lint, codespell"
	@echo "make bench       pytest-benchmark microbenchmarks (bench/micro) and end-to-end (bench/e2e)"
	@echo "make bench-compare  l2tpns and l2tpfast under the same l2tpfast bench, ratio table (ROUNDS)"
	@echo "make demo        LNS and LAC in two namespaces, SESSIONS=100 PPP sessions, live traffic table (DURATION, SIZE, RATE)"
	@echo "make wheel       build a platform wheel into wheelhouse/"
	@echo "make clean       remove build products"

system-deps:
	bash ci/install-system-deps.sh

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

venv: $(PY)

# Editable install: the compiled modules are built in place, beside the sources.
install: venv
	$(PY) -m pip install -q -e '.[test]'

compile: venv
	$(PY) -m pip install -q 'Cython>=3.0.10' 'numpy>=1.26' 'setuptools>=68'
	$(PY) setup.py -q build_ext --inplace --force

debug: venv
	$(PY) -m pip install -q 'Cython>=3.0.10' 'numpy>=1.26' 'setuptools>=68'
	L2TPFAST_DEBUG=1 $(PY) setup.py -q build_ext --inplace --force

# pytest exits 5 when it collected no test: that is a failure here, said plainly.
define run_pytest
	$(PY) -m pytest $(1) || { rc=$$?; if [ $$rc -eq 5 ]; then echo "FAIL: no tests collected" >&2; fi; exit $$rc; }
endef

test: system-deps install compile
	$(call run_pytest,$(PYTEST_ARGS))

test-debug: debug
	$(call run_pytest,tests/fastpath tests/property $(PYTEST_ARGS))
	$(MAKE) compile

lint: install
	$(PY) -m pytest tests/test_lint.py

bench: install compile
	$(PY) -m pytest bench/micro bench/e2e --benchmark-only -s $(PYTEST_ARGS)

# l2tpns (with FreeRADIUS) and our LNS in turn under `l2tpfast bench`, A B A B: bench/compare.py.
ROUNDS ?= 2
COMPARE_ARGS ?=
bench-compare: system-deps install compile
	$(PY) bench/compare.py --rounds $(ROUNDS) $(COMPARE_ARGS)

SESSIONS ?= 100
DURATION ?= 10
SIZE ?= 512
RATE ?= 20000
demo: install compile
	$(PY) bench/demo.py --sessions $(SESSIONS) --seconds $(DURATION) --size $(SIZE) --rate $(RATE)

wheel: venv
	$(PY) -m pip wheel -q --no-deps -w wheelhouse .

clean:
	rm -rf build dist wheelhouse *.egg-info src_pyx/*.c src_pyx/*.html l2tpfast/*.so .benchmarks
