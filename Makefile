# The two set-up commands of the README: `make book` and `make test`.
# Both create .venv and install requirements on first use; neither needs a GPU.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: book test data env clean site-test colab-check

book: env                      ## build the site into _build/html (warnings are errors)
	$(BIN)/jupyter-book build . --warningiserror --keep-going

test: env data                 ## unit tests + every chapter replayed by nbval
	$(BIN)/pytest

site-test: env                 ## the built site in headless Chromium (installs Debian's chromium if missing)
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; \
	fi
	$(BIN)/pytest -m browser tests/test_site.py

colab-check: env               ## chapters in a fresh Colab-like runtime, offline; CHAPTERS="03_training ..."
	$(BIN)/python tools/colab_check.py $(CHAPTERS)

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
