#!/usr/bin/env bash
# All GPU checks of the book in one run, on a machine with an NVIDIA GPU, PyTorch installed
# and no network (e.g. a lent H100/H200). From the repository root:
#
#   bash tools/gpu_check.sh            # results go to $OUT, or benchmarks/out/
#
# It brings its own inputs in .gpu/ (ignored by git), made beforehand on a machine with PyPI:
#   .gpu/data/*.gz     the four Fashion-MNIST files (cp ../shared/data/FashionMNIST/raw/*.gz)
#   .gpu/wheels/*.whl  packages the GPU machine lacks (d2l, nbval, ipykernel and their needs),
#                      see "GPU checks" in README.md for the pip download command.
# Then: 1. the benchmark (text's loop vs fast path variants) on cuda, written as JSON;
#       2. the whole test suite (unit tests + nbval replay of every chapter) with the GPU visible.
# Narrower runs: VARIANTS="text fast fast-graph" TESTS=tests/test_fast.py CHAPTERS="notebooks/04_fast_training.ipynb"
# (benchmarks/results/gpu-h200-2.json came from VARIANTS="text fast fast-graph
# fast-graph-cudnn-benchmark fast-graph-compile" TESTS=tests/test_fast.py and chapters 04, 05, 07).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/out}"
mkdir -p "$out"
start=$(date +%s)
elapsed() { echo "[$(( $(date +%s) - start )) s] $*"; }

if compgen -G ".gpu/wheels/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .gpu/wheels/*.whl || exit 1
    export PYTHONPATH="/tmp/site"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi -L | tee "$out/nvidia-smi.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
python3 -m lenet_book.data prepare --source .gpu/data || exit 1

elapsed "benchmark"
timeout "${BENCH_TIMEOUT:-240}" python3 benchmarks/train_speed.py --device cuda --epochs 10 \
    --variants ${VARIANTS:-text fast fast-graph fast-graph-bf16 fast-bf16 fast-channels-last fast-compile} \
    --json "$out/gpu.json" 2>&1 | tee "$out/benchmark.log"
bench=${PIPESTATUS[0]}

elapsed "test suite with the GPU visible"
# The unit tests of the code that trains, and every chapter (or those named in $CHAPTERS);
# the book's structure and site tests need no GPU and run in CI.
chapters=${CHAPTERS:-$(grep -oP 'file:\s*\Knotebooks/\S+' _toc.yml | sed 's/$/.ipynb/')}
timeout "${TEST_TIMEOUT:-300}" python3 -m pytest -q -rA --junitxml "$out/pytest-gpu.xml" \
    ${TESTS:-tests/test_data.py tests/test_fast.py} $chapters 2>&1 | tail -n 60 | tee "$out/pytest-gpu.log"
tests=${PIPESTATUS[0]}

# Per file: how many tests and nbval cells passed and failed, for book/execution_report.md.
python3 - "$out" <<'PY'
import collections, datetime, json, sys, xml.etree.ElementTree as ET
import torch
out = sys.argv[1]
files = collections.defaultdict(lambda: {"passed": 0, "failed": 0})
for case in ET.parse(f"{out}/pytest-gpu.xml").iter("testcase"):
    name = case.get("classname", "")
    name = name.replace(".", "/", 1) if ".ipynb" in name else "/".join(name.split(".")[:2]) + ".py"
    name = name.split("::")[0]
    if case.find("skipped") is None:
        failed = case.find("failure") is not None or case.find("error") is not None
        files[name]["failed" if failed else "passed"] += 1
json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
           "date": datetime.date.today().isoformat(), "files": dict(sorted(files.items()))},
          open(f"{out}/gpu-nbval.json", "w"), indent=2)
print(json.dumps(files, indent=1))
PY

elapsed "done: benchmark exit $bench, tests exit $tests"
exit $(( bench || tests ))
