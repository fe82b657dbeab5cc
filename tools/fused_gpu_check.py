"""Time the fused training step beside the text's loop and the CUDA-graph fast path, in one process.

    python3 -m tools.fused_gpu_check                      # on a GPU machine; JSON to $OUT/fused.json
    python tools/fused_gpu_check.py --device cpu --epochs 1 --subset 2048 --json /tmp/fused_cpu.json

Variants (each the text's recipe: LeNet-5, Xavier init, SGD lr 0.9, batch 256, cross-entropy), trained
by the benchmark's own code (``benchmarks/train_speed.py``: ``run_variant`` and its ``VARIANTS``):
  text              lenet_book.textbook.train_text_loop with the text's DataLoaders
  fast-graph        lenet_book.fast.train_fast(cuda_graph=True) (on a CPU: the variant fast, no graph)
  fused-graph       lenet_book.fused.train_fused(cuda_graph=True) (on a CPU: the variant fused, no graph)
  fused             the fused step without the graph (CUDA only)
  fused-graph-max-autotune   fused-graph compiled with mode="max-autotune-no-cudagraphs" (CUDA only,
                    started only while the time budget lasts: its autotuning takes minutes)
After each graph variant it profiles ONE replay of a freshly recorded epoch graph (kernel count,
kernels per step, top kernels by GPU time); if the profiler sees no kernels inside the replay it
profiles one epoch run step by step instead. A variant that fails is recorded with its error and
the others go on (the exit status is then 1); the JSON is rewritten whole after every variant, so a
run cut short keeps what it did (and says so, "stopped"), with an earlier record's runs of the
same settings that it has not measured again (marked "earlier_record"). As
benchmarks/train_speed.py's --json, it replaces only a record of this check made with the same
settings (device type, epochs, subset, seed, backend where a fused variant runs, and no variant
it does not train) unless given --replace; every option, --data included, is checked before
anything trains.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import os
import platform
import signal
import sys
import time
import traceback
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmarks and lenet_book from this checkout: python tools/fused_gpu_check.py

from benchmarks._options import (  # noqa: E402
    check_data_option,
    check_record_option,
    check_subset_option,
    hold_record,
    read_record,
    release_records,
    write_record,
)
from benchmarks.train_speed import run_variant  # noqa: E402
from lenet_book.checks import SEED_MAX, _check_fused_options, check_device  # noqa: E402
from lenet_book.device import device_name  # noqa: E402
from lenet_book.fast import (  # noqa: E402
    EpochGraph,
    init_xavier,
    lenet,
    load_fashion_mnist_tensors,
    synchronize,
    to_float,
    train_step,
)
from lenet_book.fused import FusedEpochGraph, FusedStep, warm_up  # noqa: E402
from lenet_book.recipes import TEXT  # noqa: E402

BATCH, LR = TEXT["batch_size"], TEXT["lr"]
CUDA_VARIANTS = ["text", "fast-graph", "fused-graph", "fused", "fused-graph-max-autotune"]
CPU_VARIANTS = ["text", "fast-graph", "fused-graph"]
CPU_NAMES = {"fast-graph": "fast", "fused-graph": "fused"}  # the benchmark's variants without the graph


class OutOfTime(BaseException):
    """Raised by the alarm when the run has used its whole --budget (BaseException: no variant catches it)."""


def train_variant(name, device, args):
    """Train one variant with the benchmark's own code (benchmarks/train_speed.py); returns its record.

    On a CPU (dry runs) the graph variants run without their CUDA graph: text, fast and fused.
    """
    benchmark_name = name if device.type == "cuda" else CPU_NAMES.get(name, name)
    record = run_variant(benchmark_name, device, args.epochs, args.data, args.seed,
                         subset=args.subset, backend=args.backend)
    return record | {"variant": name}


def kernel_table(prof, device, steps):
    """Kernels (device-side events) of a profile: count, per step, and the top ones by time."""
    if device.type == "cuda":
        events = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
        kernels = [e for e in events if not e.name.startswith(("Memcpy", "Memset"))]
        timed = [(e.name, e.time_range.elapsed_us()) for e in kernels]
    else:  # a CPU has no kernels: count the top-level operators instead
        kernels = [e for e in prof.events() if e.cpu_parent is None and e.device_type == torch.autograd.DeviceType.CPU]
        timed = [(e.name, e.self_cpu_time_total) for e in kernels]
    by_name = collections.defaultdict(lambda: [0, 0.0])
    for kernel_name, us in timed:
        by_name[kernel_name][0] += 1
        by_name[kernel_name][1] += us
    total_us = sum(us for _, us in timed)
    top = sorted(by_name.items(), key=lambda kv: -kv[1][1])[:15]
    return {"kernels": len(kernels), "steps": steps, "kernels_per_step": len(kernels) / steps,
            "kernel_us_total": total_us, "kernel_us_per_step": total_us / steps,
            "top": [{"name": n[:120], "count": c, "us_total": us, "share": us / total_us if total_us else 0.0}
                    for n, (c, us) in top]}


def profile_variant(name, device, args, train_data):
    """Profile one epoch of ``name``: one replay of its epoch graph, or step by step if the replay shows nothing."""
    from torch.profiler import ProfilerActivity, profile

    images, labels = train_data
    torch.manual_seed(args.seed)
    net = init_xavier(lenet()).to(device)
    order = torch.randperm(len(labels), device=device)
    steps = len(order.split(BATCH))
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    if name.startswith("fused"):
        mode = "max-autotune-no-cudagraphs" if name.endswith("max-autotune") else None
        step = FusedStep(net, images, labels, lr=LR, mode=mode, backend=args.backend)
        one_step = step
        make_graph = lambda: FusedEpochGraph(step, BATCH)  # noqa: E731
    else:
        optimizer, loss_fn = torch.optim.SGD(net.parameters(), lr=LR), nn.CrossEntropyLoss()
        one_step = lambda idx: train_step(net, optimizer, loss_fn, to_float(images[idx]), labels[idx])  # noqa: E731
        make_graph = lambda: EpochGraph(net, optimizer, loss_fn, images, labels, BATCH)  # noqa: E731
    result = {}
    if device.type == "cuda":
        graph = make_graph()
        graph.run(order)  # one replay before the profiled one
        synchronize(device)
        with profile(activities=activities) as prof:
            graph.run(order)
            synchronize(device)
        result = {"what": "one replay of the epoch graph", **kernel_table(prof, device, steps)}
    if not result or result["kernels"] == 0:
        if name.startswith("fused"):
            warm_up(step, order.split(BATCH))
        with profile(activities=activities) as prof:
            for idx in order.split(BATCH):
                one_step(idx)
            synchronize(device)
        result = {"what": "one epoch step by step, no graph"
                          + (" (the graph replay showed no kernels)" if device.type == "cuda" else ""),
                  **kernel_table(prof, device, steps)}
    return result


def print_profile(name, p):
    print(f"\n  profile of {name}: {p['what']}: {p['kernels']} kernels, {p['kernels_per_step']:.1f} per step, "
          f"{p['kernel_us_per_step']:.1f} us of kernel time per step")
    print(f"  {'count':>6} {'us total':>10} {'share':>6}  kernel")
    for k in p["top"]:
        print(f"  {k['count']:6d} {k['us_total']:10.1f} {k['share']:6.1%}  {k['name'][:90]}")


def is_fused_record(record):
    """Whether ``record`` (parsed JSON) is a record this check wrote: --json replaces no other."""
    return (isinstance(record, dict) and {"device_type", "backend", "runs", "profiles"} <= set(record)
            and isinstance(record["runs"], list)  # each run as train_variant or a failure writes it
            and all(isinstance(r, dict) and isinstance(r.get("variant"), str) for r in record["runs"]))


def settings_problem(record, device, args, variants):
    """How the earlier record ``record`` (of is_fused_record) was made otherwise than this run
    would make it, in words (None: the same settings, so this run measures again what it holds)."""
    theirs_variants = list(dict.fromkeys(r["variant"] for r in record["runs"]))
    # the backend compiles the fused step only: a record and a run without one do not depend on it
    compiled = any(v.startswith("fused") for v in [*theirs_variants, *variants])
    differ = [f"{option} {theirs} (this run: {ours})" for option, theirs, ours in (
        ("--device", record.get("device_type"), device.type), ("--epochs", record.get("epochs"), args.epochs),
        ("--subset", record.get("subset") or 0, args.subset), ("--seed", record.get("seed", 0), args.seed),
        ("--backend", record.get("backend"), args.backend if compiled else record.get("backend")),
        ("batch size", record.get("batch_size"), BATCH), ("lr", record.get("lr"), LR))
        if theirs != ours]
    lost = [v for v in theirs_variants if v not in variants]
    if lost:
        differ.append(f"runs of {', '.join(map(str, lost))}, which this run does not train")
    return "; ".join(differ) or None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--variants", nargs="+", choices=CUDA_VARIANTS,
                        help=f"default on CUDA: {' '.join(CUDA_VARIANTS)}; on a CPU: {' '.join(CPU_VARIANTS)}")
    parser.add_argument("--data", default=str(ROOT / "data"), help="data root holding FashionMNIST/raw")
    parser.add_argument("--subset", type=int, default=0,
                        help="train on the first N training images only (dry runs; default: all 60,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=220,
                        help="seconds for the whole run (default 220): at the limit it stops, writes what it "
                             "has and exits; the max-autotune variant starts only with half of it left")
    parser.add_argument("--backend", default="inductor",
                        help="torch.compile backend of the fused step (aot_eager: quick CPU dry runs)")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--json", help="default: $OUT/fused.json, else benchmarks/out/fused.json (a new "
                        "file, or a record of this check made with the same settings, which it replaces)")
    parser.add_argument("--replace", action="store_true", help="let --json replace a record of this check "
                        "made with other settings (device type, epochs, subset, seed, backend, variants)")
    args = parser.parse_args(argv)
    try:
        return run_check(parser, args)
    finally:
        release_records()  # the --json record, held for the whole run


def run_check(parser, args):
    t0 = time.perf_counter()
    if args.budget <= 0:
        parser.error(f"--budget must be a positive number of seconds, got {args.budget}")
    if args.epochs < 1:  # before a run that records every variant as failed
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    if args.subset < 0:
        parser.error("--subset must be a number of training images to train on, or 0 for all "
                     f"60,000 (the default), got {args.subset}")
    check_subset_option(parser, args.subset)  # above 60,000: as benchmarks/train_speed.py says it
    if not 0 <= args.seed <= SEED_MAX:
        parser.error(f"--seed must be a whole number from 0 to {SEED_MAX} (2**64 - 1, the largest seed "
                     f"torch takes), got {args.seed}")
    if args.replace and args.json is None:  # it would do nothing
        parser.error("--replace replaces the record given with --json; give --json too, or leave --replace out")
    _check_backend_option(parser, args.backend)  # else it fails only at the first fused variant

    try:  # 'gpu', 'cuda:7' on a machine of one GPU: lenet_book's message, not a traceback
        device = check_device(args.device, "--device")
    except (TypeError, ValueError) as error:
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            parser.error("--device cuda: PyTorch sees no CUDA GPU here; use --device cpu for a "
                         "dry run")
        parser.error(str(error))
    variants = args.variants or (CUDA_VARIANTS if device.type == "cuda" else CPU_VARIANTS)
    if device.type != "cuda" and any(v in ("fused", "fused-graph-max-autotune") for v in variants):
        parser.error("the variants fused and fused-graph-max-autotune are for CUDA only")
    twice = sorted({v for v in variants if variants.count(v) > 1})
    if twice:  # the record would hold two runs of one variant, which fused_table refuses
        parser.error(f"--variants names {' '.join(twice)} more than once; name each variant once")
    # the record is checked before anything trains: no other file is ever replaced, nor lost
    default = Path(os.environ.get("OUT") or ROOT / "benchmarks" / "out") / "fused.json"
    json_path = check_record_option(  # --json '' (an unset shell variable) is refused, not the default
        parser, default if args.json is None else args.json,
        is_fused_record, "a record of this fused-step check")
    hold_record(parser, json_path)  # two runs on one record: the last to write would drop the other's
    earlier = read_record(json_path)  # read again now that no other run writes it
    if earlier is not None and not is_fused_record(earlier):
        parser.error(f"--json {json_path} was replaced by another kind of file while this run started; "
                     "give another --json; nothing was run")
    # the default file is this check's scratch output, replaced by every run
    problem = args.json is not None and earlier and not args.replace and settings_problem(
        earlier, device, args, variants)
    if problem:
        parser.error(f"--json {json_path} holds a record made with other settings ({problem}); this run "
                     "would replace it and its runs would be lost: nothing was run. Give the same settings "
                     "to measure them again, another --json, or --replace to replace it")
    check_data_option(parser, args.data)  # missing or misplaced data: the parser's error, not a traceback
    name = device_name(device)
    report = {"device": name, "device_type": device.type, "torch": torch.__version__,
              "cuda": torch.version.cuda, "triton": _version("triton"), "python": platform.python_version(),
              "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "epochs": args.epochs, "backend": args.backend, "batch_size": BATCH, "lr": LR,
              "subset": args.subset or None, "seed": args.seed,
              "runs": [], "profiles": {}}

    # a rerun of the same settings keeps the earlier record's runs and profiles until it measures
    # their variant again: stopped half-way, it must not leave the record with only what it finished
    kept = ([] if not earlier or settings_problem(earlier, device, args, variants)
            else [r | {"earlier_record": r.get("earlier_record") or earlier.get("date_utc")}
                  for r in earlier["runs"] if r["variant"] in variants])
    kept_profiles = dict(earlier["profiles"]) if kept and isinstance(earlier["profiles"], dict) else {}
    if kept:
        print(f"{json_path} holds runs of these settings: each is kept there until this run measures its "
              "variant again", flush=True)

    def save(finished=False):
        text = next((r for r in report["runs"] if r["variant"] == "text" and "error" not in r), None)
        for r in report["runs"]:
            if text and "error" not in r:
                r["ratio_to_text"] = r["examples_per_sec"] / text["examples_per_sec"]
        done = {r["variant"] for r in report["runs"]}
        old = [] if finished and "stopped" not in report else [r for r in kept if r["variant"] not in done]
        written = dict(report)
        if old:
            written["runs"] = sorted([*report["runs"], *old], key=lambda r: variants.index(r["variant"]))
            written["profiles"] = {**{v: p for v, p in kept_profiles.items() if v not in done and v in variants},
                                   **report["profiles"]}
        if not finished and "stopped" not in report:  # cleared by the last save: a record cut short says so
            written["stopped"] = (f"unfinished: this run has measured {len(done)} of its {len(variants)} "
                                  "variants" + (f"; the other {len(old)} runs are an earlier record's, each "
                                                "marked 'earlier_record'" if old else "")
                                  + "; run it again with the same settings to finish it")
        write_record(written, json_path)  # whole, through a temporary file: a kill keeps the last one

    print(f"LeNet-5 on Fashion-MNIST, {args.epochs} epochs, batch {BATCH}, lr {LR}, on {name} "
          f"(torch {torch.__version__})", flush=True)
    # every new FusedStep (training, profiling, each mode) may add compiled versions of the step
    torch._dynamo.config.cache_size_limit = max(64, torch._dynamo.config.cache_size_limit)
    train_data, _ = load_fashion_mnist_tensors(args.data, device)
    if args.subset:
        train_data = (train_data[0][:args.subset], train_data[1][:args.subset])

    def out_of_time(signum, frame):
        raise OutOfTime()

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(max(1, args.budget - int(time.perf_counter() - t0)))
    try:
        for variant in variants:
            used = time.perf_counter() - t0
            if variant.endswith("max-autotune") and used > args.budget / 2:
                print(f"{variant}: skipped, {used:.0f} s of the {args.budget:.0f} s budget used", flush=True)
                report["runs"].append({"variant": variant,
                                       "error": f"skipped: {used:.0f} s of {args.budget:.0f} s used"})
                save()
                continue
            print(f"{variant} [{used:.0f} s]", flush=True)
            try:
                report["runs"].append(train_variant(variant, device, args))
            except Exception as error:  # a failing variant must not lose the others' figures
                traceback.print_exc()
                report["runs"].append({"variant": variant, "error": f"{type(error).__name__}: {error}"[:2000]})
            save()
            if not args.no_profile and "graph" in variant and "error" not in report["runs"][-1]:
                try:
                    report["profiles"][variant] = profile_variant(variant, device, args, train_data)
                    print_profile(variant, report["profiles"][variant])
                except Exception as error:
                    traceback.print_exc()
                    report["profiles"][variant] = {"error": f"{type(error).__name__}: {error}"[:2000]}
                save()
    except OutOfTime:
        print(f"\nout of time: the --budget of {args.budget} s is used up; stopping", flush=True)
        report["stopped"] = f"out of time after {args.budget} s, during {variant}"
    finally:
        signal.alarm(0)

    report["total_seconds"] = time.perf_counter() - t0
    save(finished=True)
    print(f"\n{'variant':>24} {'examples/sec':>13} {'train s':>8} {'setup s':>8} {'test acc':>8} {'x text':>7}")
    for r in report["runs"]:
        if "error" in r:
            print(f"{r['variant']:>24} failed: {r['error'][:100]}")
        else:
            print(f"{r['variant']:>24} {r['examples_per_sec']:13,.0f} {r['train_seconds']:8.2f} "
                  f"{r.get('setup_seconds', float('nan')):8.1f} {r['test_acc']:8.3f} "
                  f"{r.get('ratio_to_text', float('nan')):7.2f}")
    print(f"results written to {json_path} ({report['total_seconds']:.0f} s in all)")
    return 0 if "stopped" not in report and all("error" not in r for r in report["runs"]) else 1


def _check_backend_option(parser, backend):
    """--backend as lenet_book.fused checks it (a backend torch.compile has and can load), before
    any run: the record keeps it, and a rerun with the corrected one would be refused as other
    settings."""
    if not backend.strip():  # an unset shell variable: the fused step would compile with inductor
        parser.error(f"--backend is empty ({backend!r}): give a torch.compile backend, e.g. --backend "
                     "inductor (the default) or --backend aot_eager (quick CPU dry runs); nothing was run")
    try:
        _check_fused_options({"backend": backend, "mode": None, "bf16_layers": ()})
    except ValueError as error:
        import difflib

        import torch._dynamo  # noqa: F401  (imported by the check above)

        close = [name for name in difflib.get_close_matches(
            backend, torch._dynamo.list_backends(exclude_tags=()), n=2) if name != backend][:1]
        parser.error(f"--backend {backend}: {error}"
                     + (f"; did you mean --backend {close[0]}?" if close else "")
                     + "; nothing was run")


def _version(package):
    try:
        from importlib.metadata import version
        return version(package)
    except Exception:
        return None


if __name__ == "__main__":
    sys.exit(main())
