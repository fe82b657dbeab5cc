# The two set-up commands of the README: `make book` and `make test`.
# Both create .venv and install requirements on first use; neither needs a GPU.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: book test data env clean

book: env                      ## build the site into _build/html (warnings are errors)
	$(BIN)/jupyter-book build . --warningiserror --keep-going

test: env data                 ## unit tests + every chapter replayed by nbval
	$(BIN)/pytest

data: env                      ## data/FashionMNIST/raw from a local copy, offline (or download)
	$(BIN)/python -m lenet_book.data prepare || $(BIN)/python -c \
	  "from lenet_book.data import ensure_fashion_mnist as e; print('downloaded to', e('data'))"

env: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-nodeps.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $@

clean:
	rm -rf _build
