# Two commands on a fresh machine:  `make demo`  and  `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo demo-long test test-slow lint bench bench-deep

$(VENV)/.installed: pyproject.toml setup.py scripts/setup.sh $(wildcard pointseg/_native/*.c) $(wildcard pointseg/_native/*.h)
	bash scripts/setup.sh
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) -m pointseg demo

demo-long: setup
	$(PY) -m pointseg demo --long

test: setup
	$(PY) -m pytest -q -n 2 tests

test-slow: setup
	$(PY) -m pytest -q -n 2 -m slow tests

lint: setup
	$(VENV)/bin/ruff check pointseg tests benchmarks visualize

bench: setup
	$(PY) benchmarks/knn.py
	$(PY) benchmarks/train_step.py
	$(PY) benchmarks/prepare.py
	$(PY) benchmarks/predict.py
	$(PY) benchmarks/graph_memory.py

# the very-deep-model benchmarks (each <= ~10 min on 2 quiet cores)
bench-deep: setup
	$(PY) benchmarks/memory_depth.py
	$(PY) benchmarks/depth_study.py
