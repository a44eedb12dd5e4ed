PYTHON ?= python
PIP = $(PYTHON) -m pip install --quiet --disable-pip-version-check

.PHONY: demo test install-dev lint bench

demo:
	$(PIP) -c constraints.txt -e ".[demo]" && $(PYTHON) -m torch_keras_metrics.demo

test:
	$(PIP) -c constraints.txt -e ".[dev]" && $(PYTHON) -m ruff check torch_keras_metrics tests benchmarks examples notebooks && $(PYTHON) -m pytest

bench:
	$(PIP) -c constraints.txt -e ".[dev]" && $(PYTHON) benchmarks/metrics.py && $(PYTHON) benchmarks/trainer.py
