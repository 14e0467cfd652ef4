# Two commands do all the set-up on a fresh machine:
#   make quickstart   install, then fine-tune Gemma 3 270M on the quickstart data (about 10 min on a CPU)
#   make test         install, then run every test (the quickstart end-to-end test included)

VENV   ?= .venv
PYTHON ?= python3
BIN     = $(VENV)/bin

.PHONY: install quickstart test test-fast clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The CPU build of torch first: a bare torch requirement would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[local,azure,eval,serve,dev]"
	touch $@

install: $(BIN)/.installed

quickstart: install
	$(BIN)/ftp run examples/quickstart/pipeline.yaml --backend local
	$(BIN)/ftp models list --pipeline examples/quickstart/pipeline.yaml

test: install
	$(BIN)/python -m pytest -v --durations=15

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

clean:
	rm -rf $(VENV) runs examples/quickstart/.ftp examples/quickstart/runs
