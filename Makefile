.PHONY: install lint test demo clean

install:
	@.ci/bootstrap

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/lint-imports

test: lint
	.venv/bin/pytest

demo: install
	.venv/bin/python -m demo

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache
