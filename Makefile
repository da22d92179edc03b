# Two commands set everything up: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-stamp

.PHONY: install run test lint bench faq-embeddings clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || { echo "Creating the virtualenv in $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "Installing Tawasul and its dependencies"
	@$(BIN)/pip install --quiet --upgrade pip
	@$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/tawasul db upgrade
	$(BIN)/tawasul serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

test: install lint
	@$(BIN)/python scripts/ensure-test-peers
	$(BIN)/pytest -q -p no:cacheprovider -n 2 --dist loadfile

bench: install
	$(BIN)/python bench/load.py $(BENCH_ARGS)

# After editing the shipped knowledge base (conversations/data/faq.toml).
faq-embeddings: install
	$(BIN)/python scripts/faq-embeddings

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .mypy_cache
