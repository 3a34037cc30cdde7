# Quick start: `make demo` runs the matcher on a sequence, `make test` runs the suite.
# Both set everything up first (see scripts/setup_env.sh).
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
ENV := source scripts/env.sh
PYTEST_ARGS ?=

.PHONY: setup demo test test-oldest lint format bench bench-gpu gpu-wheels clean

setup:
	@mkdir -p log && bash scripts/setup_env.sh

demo: setup
	@$(ENV) && superglue-ros demo

test: setup
	@$(ENV) && python -m pytest -q -rs $(PYTEST_ARGS) test

# The non-ROS suite on the oldest stack the docs promise (Jazzy's numpy 1.26.4 and
# OpenCV 4.6, scripts/constraints-oldest.txt) in .venv-oldest; ROS tests skip there.
test-oldest:
	@mkdir -p log && bash scripts/setup_env.sh --oldest
	@source .venv-oldest/bin/activate && python -m pytest -q -rs $(PYTEST_ARGS) test

lint: setup
	@$(ENV) && ruff check superglue_ros test launch setup.py && ruff format --check superglue_ros test launch setup.py

format: setup
	@$(ENV) && ruff format superglue_ros test launch && ruff check --fix superglue_ros test launch

bench: setup
	@$(ENV) && superglue-ros bench

# The GPU figures of docs/models.md in one call (on the GPU machine; see the script).
bench-gpu:
	@bash scripts/bench_gpu.sh

# Wheels (Python 3.12, x86_64) of what the GPU machine may lack, for it has no network.
gpu-wheels:
	@$(ENV) && pip download -q --only-binary=:all: --python-version 3.12 \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
	  --platform manylinux2014_x86_64 -d .gpu-wheels pyyaml==6.0.3 onnx==1.23.2 numpy

clean:
	rm -rf build install log .venv .venv-oldest
