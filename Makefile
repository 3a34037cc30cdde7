# Quick start: `make demo` runs the matcher on a sequence, `make test` runs the suite.
# Both set everything up first (see scripts/setup_env.sh).
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
ENV := source scripts/env.sh
PYTEST_ARGS ?=

.PHONY: setup demo test lint format bench clean

setup:
	@mkdir -p log && bash scripts/setup_env.sh

demo: setup
	@$(ENV) && python -m superglue_ros.tools.demo

test: setup
	@$(ENV) && python -m pytest -q -rs $(PYTEST_ARGS) test

lint: setup
	@$(ENV) && ruff check superglue_ros test launch setup.py && ruff format --check superglue_ros test launch setup.py

format: setup
	@$(ENV) && ruff format superglue_ros test launch && ruff check --fix superglue_ros test launch

bench: setup
	@$(ENV) && superglue-ros bench

clean:
	rm -rf build install log .venv
