# The two set-up commands of the README.
.PHONY: up test install lint unit api e2e bench down

install:
	bash scripts/install.sh

up: install
	knet up

down:
	knet down

lint:
	ruff check src tests bench

unit:
	python -m pytest -q tests/unit

api:
	python -m pytest -q tests/api

e2e:
	python -m pytest -q tests/e2e

test: install lint
	python -m pytest -q tests

bench:
	python bench/run_all.py
