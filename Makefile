# The two set-up commands of the README are `make book` and `make test`; `make help` lists the
# others. Every target creates .venv and installs requirements on first use; none needs a GPU.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Extra arguments for JupyterLab: make lab LAB_ARGS="--ip=0.0.0.0 --port=8890"
LAB_ARGS ?=
# make test runs the test files in TEST_JOBS processes (pytest-xdist; --dist loadfile keeps each
# notebook's cells in one process, in order, as nbval requires), each with one torch thread: two
# processes with two threads each on 2 cores fight for them. TEST_JOBS=1: one process, all threads.
TEST_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
# The images the browser page trains on (made from data/, never committed)
TRAIN_SUBSET := book/browser/train_data.min.js
# The installer that make env uses when it can (tools/install.py)
UV ?= uv==0.13.9

.PHONY: book test data env clean site-test colab-check help lab execute report bench seeds

help:                          ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):[^#]*## /  make \1\t/' | expand -t 22

book: env $(TRAIN_SUBSET)       ## build the site into _build/html (warnings are errors)
	$(BIN)/jupyter-book build . --warningiserror --keep-going

# The images the page "LeNet in your browser" trains on: made from data/, never committed
$(TRAIN_SUBSET): | data
	$(BIN)/python tools/export_training_subset.py

test: env data                 ## unit tests + every chapter and solution replayed by nbval, in TEST_JOBS processes
ifeq ($(TEST_JOBS),1)
	$(BIN)/pytest
else
	OMP_NUM_THREADS=1 $(BIN)/pytest -n $(TEST_JOBS) --dist loadfile
endif

.PHONY: pdf browser-tools

site-test: env browser-tools $(TRAIN_SUBSET)  ## every page in headless Chromium at 1366 and 390 px; the browser page's network, training and drill-down
	$(BIN)/pytest -m browser tests/test_site.py tests/test_browser_page.py tests/test_browser_training.py \
	  tests/test_browser_drilldown.py

pdf: book browser-tools        ## the whole book as one PDF, offline: _build/pdf/lenet-book.pdf, linked from the site
	$(BIN)/python tools/make_pdf.py --out _build/pdf/lenet-book.pdf --copy-to _build/html/_static/lenet-book.pdf
	LENET_BOOK_PDF=_build/pdf/lenet-book.pdf $(BIN)/pytest -m browser -k test_pdf_ tests/test_site.py

# Debian's chromium and chromium-driver (the browser tests, the PDF) and poppler-utils (the PDF's checks)
browser-tools:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ] || [ ! -x /usr/bin/pdftotext ]; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y chromium chromium-driver poppler-utils; \
	fi

colab-check: env               ## chapters in a fresh Colab-like runtime, offline; CHAPTERS="03_training ..."
	$(BIN)/python -m tools.colab_check $(CHAPTERS)

lab: env data                  ## JupyterLab on the chapters, in .venv, as root too (LAB_ARGS=... for more)
	$(BIN)/python -m tools.lab $(LAB_ARGS)

execute: env data              ## store a chapter executed: NB=notebooks/05_original_lenet.ipynb (all, solutions too, if unset)
	$(BIN)/python -m tools.execute_notebooks $(NB)

report: env                    ## regenerate book/execution_report.md from the chapters' records
	$(BIN)/python -m tools.execution_report

bench: env data                ## the speed benchmark on the CPU, 3 interleaved repeats: text's loop, fast path, torch.compile (compiled before timing), fused step (~20 min on 2 cores)
	$(BIN)/python benchmarks/train_speed.py --device cpu --repeats 3 --json benchmarks/results/cpu.json

seeds: env data                ## accuracy over seeds of every recipe, and batch norm on the final one (about 2.7 hours on 2 CPU cores; --help for a GPU)
	$(BIN)/python benchmarks/accuracy_seeds.py --device cpu --json benchmarks/out/seeds-cpu.json
	$(BIN)/python benchmarks/accuracy_seeds.py --study batch-norm-final --device cpu --seeds 8 \
	  --json benchmarks/out/batch-norm-final-cpu.json

data: env                      ## data/FashionMNIST/raw from a local copy, offline (or download)
	$(BIN)/python -m lenet_book.data prepare --download

env: $(VENV)/.installed        ## .venv with requirements.txt, by uv or pip (made on first use by every target)

# uv installs the same pins as pip in well under a minute (pip: about 3); without uv, pip does it
$(VENV)/.installed: requirements.txt requirements-nodeps.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: no $(PYTHON) on PATH; make env PYTHON=python3.12 names another (tested: 3.11, 3.12, 3.13)" >&2; exit 1; }
	@$(PYTHON) tools/python_version.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(UV)" || echo "no uv: pip installs the requirements"
	$(BIN)/python -m tools.install -r requirements.txt
	$(BIN)/python -m tools.install --no-deps -r requirements-nodeps.txt
	touch $@

clean:                         ## remove the built site (_build)
	rm -rf _build
