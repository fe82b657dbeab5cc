"""Train LeNet-5 with the text's loop and with the fast path, side by side, and compare speeds.

    python benchmarks/train_speed.py                           # the default variants of this device
    python benchmarks/train_speed.py --device cpu --repeats 3 --json benchmarks/results/cpu.json
    python benchmarks/train_speed.py --device cuda --variants text fast-graph fused-graph

Every variant trains the text's recipe (``lenet_book.recipes.TEXT``: LeNet-5, Xavier init, SGD
lr 0.9, batch 256, 10 epochs, cross-entropy, reshuffled every epoch) on the real Fashion-MNIST
in this one process, from the same initial weights, one after the other, so the ratios compare
runs made under the same conditions. For each it prints examples/sec (timed around the
training steps only, as the text times them), the wall time of the training epochs and of the
whole run, and the test accuracy.

Compilation is timed apart from training, the same way for every compiled variant: the
``torch.compile`` variants are compiled and warmed up by ``lenet_book.speed.compile_and_warm_up``
and the fused step by its own warm-up, all before the training timer starts. Each record's
``setup_seconds`` holds that time (0 for a variant that compiles nothing), and
``graphs_compiled_in_trainer`` counts the graphs torch.compile compiled once the trainer was
called: 0 for ``fast-compile`` in a fair run (for the fused step it includes the compilation
that ``train_fused`` does before its timer starts).

With ``--repeats N`` every variant runs N times, the repeats interleaved (text, fast, ...,
text, fast, ...), and the table shows mean ± standard deviation of examples/sec and of the
ratio to the text's loop, taken repeat by repeat. ``--json`` records every run (with its
per-epoch history), the summary, the device, torch version, date and commit. One run at a time
writes a record (another is refused), and a run replaces only a record of its own settings
(device type, epochs, subset, repeats, seed, and no variant it does not train) unless given --replace;
until it has measured every run, the record keeps the earlier record's runs it has not measured
again (marked "earlier_record") and says it is unfinished ("stopped").

``VARIANTS`` and ``DEFAULTS`` are the one list of variants: tools/gpu_check.py and
.github/workflows/gpu.yml run this script with the defaults of ``cuda``.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # lenet_book, tools and benchmarks._options from this checkout

from benchmarks._options import (  # noqa: E402
    TRAIN_IMAGES,
    check_data_option,
    check_device_option,
    check_record_option,
    check_subset_option,
    hold_record,
    read_record,
    release_records,
    write_record,
)
from lenet_book.book import commit  # noqa: E402
from lenet_book.checks import SEED_MAX  # noqa: E402
from lenet_book.device import device_name, synchronize, try_device  # noqa: E402
from lenet_book.fast import load_fashion_mnist_tensors, train_fast  # noqa: E402
from lenet_book.models import init_xavier, lenet  # noqa: E402
from lenet_book.recipes import TEXT  # noqa: E402
from lenet_book.results import best_runs, repeat_summary  # noqa: E402
from lenet_book.speed import compile_and_warm_up  # noqa: E402
from lenet_book.textbook import text_loaders, train_text_loop  # noqa: E402

# name -> (description, options: None for the text's loop; "fused" picks lenet_book.fused.train_fused,
# "threads", "flush_denormal" and "cudnn_benchmark" are set around the run, the rest go to train_fast)
VARIANTS = {
    "text": ("the text's loop: DataLoader + ToTensor per image", None),
    "fast": ("fast path: data set on the device, index slicing", {}),
    "fast-1thread": ("fast path, one CPU thread", {"threads": 1}),
    "fast-flush-denormal": ("fast path, denormals flushed to zero", {"flush_denormal": True}),
    "fast-channels-last": ("fast path, channels-last memory format", {"channels_last": True}),
    "fast-channels-last-flush-denormal": ("fast path, channels-last + denormals flushed to zero",
                                          {"channels_last": True, "flush_denormal": True}),
    "fast-bf16": ("fast path, bf16 autocast", {"amp_dtype": torch.bfloat16}),
    "fast-compile": ("fast path, torch.compile of the network (compiled before timing)",
                     {"compile": True}),
    "fast-graph": ("fast path, each epoch one CUDA graph", {"cuda_graph": True}),
    "fast-graph-bf16": ("fast path, CUDA graph + bf16 autocast", {"cuda_graph": True, "amp_dtype": torch.bfloat16}),
    "fast-graph-cudnn-benchmark": ("fast path, CUDA graph + cuDNN autotuning",
                                   {"cuda_graph": True, "cudnn_benchmark": True}),
    "fast-graph-compile": ("fast path, CUDA graph + torch.compile (compiled before timing)",
                           {"cuda_graph": True, "compile": True}),
    "fused": ("fused step: forward, loss, backward and update compiled as one function",
              {"fused": True, "cuda_graph": False}),
    "fused-channels-last": ("fused step, channels-last memory format",
                            {"fused": True, "cuda_graph": False, "channels_last": True}),
    "fused-channels-last-bf16-conv2": ("fused step, channels-last, second convolution in bfloat16",
                                       {"fused": True, "cuda_graph": False, "channels_last": True,
                                        "bf16_layers": ("3",)}),
    "fused-graph": ("fused step, each epoch one CUDA graph", {"fused": True, "cuda_graph": True}),
    "fused-graph-max-autotune": ("fused step, each epoch one CUDA graph, compiled with "
                                 "mode='max-autotune-no-cudagraphs' (its autotuning takes minutes)",
                                 {"fused": True, "cuda_graph": True, "mode": "max-autotune-no-cudagraphs"}),
}
DEFAULT_SEED = 0  # --seed's default; a record without "seed" (written before it was kept) used it
DEFAULTS = {
    "cpu": ["text", "fast", "fast-channels-last", "fast-compile", "fused-channels-last",
            "fused-channels-last-bf16-conv2"],
    "cuda": ["text", "fast", "fast-compile", "fast-graph", "fast-graph-bf16", "fused", "fused-graph"],
}


def needs_cuda(variant):
    return VARIANTS[variant][1] is not None and VARIANTS[variant][1].get("cuda_graph", False)


def graphs_compiled():
    """How many graphs torch.compile has compiled in this process so far."""
    if "torch._dynamo" not in sys.modules:
        return 0
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


def run_fast_variant(options, device, epochs, root, seed, net, progress, subset=0):
    """One run of train_fast (or train_fused) with the variant's global settings set around it.

    Returns (history, training seconds, examples, setup seconds, graphs compiled in the trainer):
    a ``compile`` variant is compiled and warmed up before ``train_fast`` starts its timer
    (``lenet_book.speed.compile_and_warm_up``), as ``train_fused`` does with its step.
    """
    options = dict(options)
    threads, flush = options.pop("threads", None), options.pop("flush_denormal", False)
    saved_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    torch.set_flush_denormal(flush)
    torch.backends.cudnn.benchmark = options.pop("cudnn_benchmark", False)
    try:
        train_data, test_data = load_fashion_mnist_tensors(root, device)
        if subset:
            train_data = (train_data[0][:subset], train_data[1][:subset])
        setup_seconds = 0.0
        if options.pop("fused", False):
            from lenet_book.fused import train_fused  # imports torch.compile's machinery: only when asked

            trainer = train_fused
        else:
            trainer = train_fast
            if options.pop("compile", False):
                net, setup_seconds = compile_and_warm_up(
                    net, train_data, test_data, TEXT["batch_size"], amp_dtype=options.get("amp_dtype"),
                    channels_last=options.get("channels_last", False))
        compiled_before = graphs_compiled()
        history, step_seconds = trainer(net, train_data, test_data, epochs, lr=TEXT["lr"],
                                        batch_size=TEXT["batch_size"], seed=seed, on_epoch=progress, **options)
        compiled_in_trainer = graphs_compiled() - compiled_before
    finally:
        torch.set_num_threads(saved_threads)
        torch.set_flush_denormal(False)
        torch.backends.cudnn.benchmark = False
    setup_seconds = history[0].get("setup_seconds", setup_seconds)  # the fused step's warm-up
    return history, step_seconds, len(train_data[1]) * epochs, setup_seconds, compiled_in_trainer


def run_variant(name, device, epochs, root, seed, repeat=0, subset=0, backend=None):
    """Train variant ``name`` from the same seeded initial weights; returns its record.

    ``subset``: train on the first N training images only (a quick check, not a benchmark);
    ``backend``: the torch.compile backend of the fused step (aot_eager for quick CPU checks).
    tools/fused_gpu_check.py trains its variants with this function too.
    """
    description, options = VARIANTS[name]
    if backend is not None and options and options.get("fused"):  # '' is refused, not dropped
        options = {**options, "backend": backend}
    torch.manual_seed(seed)
    net = init_xavier(lenet())  # every variant starts from these weights
    progress = lambda h: print(f"  {name:>20} epoch {h['epoch']:2d}: loss {h['loss']:.3f}, "  # noqa: E731
                               f"train acc {h['train_acc']:.3f}, test acc {h['test_acc']:.3f}", flush=True)
    start = time.perf_counter()
    if options is None:
        train_iter, test_iter = text_loaders(root, TEXT["batch_size"])
        if subset:
            train_iter = torch.utils.data.DataLoader(
                torch.utils.data.Subset(train_iter.dataset, range(subset)), TEXT["batch_size"],
                shuffle=True, num_workers=train_iter.num_workers)
        history, step_seconds = train_text_loop(net, train_iter, test_iter, epochs, TEXT["lr"], device,
                                                progress, init=False)
        examples = len(train_iter.dataset) * epochs
        setup_seconds, compiled_in_trainer = 0.0, 0
    else:
        history, step_seconds, examples, setup_seconds, compiled_in_trainer = run_fast_variant(
            options, device, epochs, root, seed, net, progress, subset)
    synchronize(device)
    last = history[-1]
    record = {"variant": name, "description": description, "repeat": repeat, "epochs": epochs,
              "examples_per_sec": examples / step_seconds, "train_seconds": step_seconds,
              "wall_seconds": time.perf_counter() - start, "loss": last["loss"],
              "train_acc": last["train_acc"], "test_acc": last["test_acc"],
              "setup_seconds": setup_seconds,  # compiling and warming up, before the timer starts
              "graphs_compiled_in_trainer": compiled_in_trainer,
              "history": history}
    return record


def write_json(path, name, device, args, variants, runs, earlier=()):
    """Write the record: this run's ``runs`` and, until this run has measured them all, the
    ``earlier`` record's runs (of the same settings) that it has not measured again yet, with a
    "stopped" note (a run killed here leaves this file as it is)."""
    planned = [(variant, repeat) for repeat in range(args.repeats) for variant in variants]
    measured = {(r["variant"], r["repeat"]) for r in runs}
    finished = set(planned) <= measured
    kept = [] if finished else [r for r in earlier if (r["variant"], r["repeat"]) not in measured]
    order = {key: i for i, key in enumerate(planned)}
    all_runs = sorted([*runs, *kept], key=lambda r: order[(r["variant"], r["repeat"])])
    best = best_runs(all_runs)
    record = {
        "device": name, "device_type": device.type, "torch": torch.__version__,
        "python": platform.python_version(), "date": datetime.date.today().isoformat(), "commit": commit(),
        "epochs": args.epochs, "subset": args.subset or None, "repeats": args.repeats, "seed": args.seed,
        "batch_size": TEXT["batch_size"], "lr": TEXT["lr"],
        "best": [best[v] for v in variants if v in best], "summary": repeat_summary(all_runs),
        "runs": all_runs}
    if not finished:  # cleared by the last write: a record cut short says so
        record["stopped"] = (f"unfinished: this run has measured {len(runs)} of its {len(planned)} runs"
                             + (f"; the other {len(kept)} are an earlier record's, each marked "
                                "'earlier_record'" if kept else "")
                             + "; run it again with the same settings to finish it")
    write_record(record, path)  # whole, through a temporary file: a run cut short keeps the last one


def earlier_runs(earlier, device, args, variants):
    """The runs of the earlier record at --json that this run's record keeps until it measures
    them again: all of them when it was made with the same settings (else none: --replace)."""
    if not earlier or settings_problem(earlier, device, args, variants):
        return []
    # the torch too: the settings compared do not include it, and lenet_book.speed names it
    stamp = {"date": earlier.get("date"), "commit": earlier.get("commit"), "torch": earlier.get("torch")}
    runs = [{**r, "earlier_record": r.get("earlier_record") or stamp}
            for r in (earlier["runs"] if isinstance(earlier["runs"], list) else [])
            if isinstance(r, dict) and r.get("variant") in variants and r.get("repeat") in range(args.repeats)
            # a run of another version of a variant would be refused by best_runs beside this run's
            and ("error" in r or r.get("description") == VARIANTS[r["variant"]][0])]
    try:
        best_runs(runs), repeat_summary(runs)
    except (TypeError, ValueError, KeyError):  # a damaged record: replaced, as before
        return []
    return runs


def is_speed_record(record):
    """Whether ``record`` (parsed JSON) is a record that write_json wrote: --json replaces no other."""
    return isinstance(record, dict) and {"device_type", "best", "runs"} <= set(record)


def settings_problem(record, device, args, variants):
    """How the earlier record ``record`` (of is_speed_record) was made otherwise than this run
    would make it, in words (None: the same settings, so this run measures again what it holds)."""
    subset = record.get("subset") or 0  # 60,000 (as a record may hold it) is every image, as 0 is
    given = getattr(args, "given_subset", args.subset)  # quoted as typed: 60000, not the 0 it came to
    differ = [f"{option} {theirs} (this run: {ours})" for option, theirs, ours, same in (
        ("--device", record.get("device_type"), device.type, None),
        ("--epochs", record.get("epochs"), args.epochs, None),
        ("--subset", subset, given, _all_images(subset) == _all_images(args.subset)),
        ("--repeats", record.get("repeats"), args.repeats, None),
        ("--seed", record.get("seed", DEFAULT_SEED), args.seed, None),  # it sets the initial weights and the order
        ("batch size", record.get("batch_size"), TEXT["batch_size"], None), ("lr", record.get("lr"), TEXT["lr"], None))
        if not (theirs == ours if same is None else same)]
    runs = record["runs"] if isinstance(record["runs"], list) else []
    # a run cut short holds only some of its variants: those this run trains again are no loss
    lost = [v for v in dict.fromkeys(r.get("variant") for r in runs if isinstance(r, dict)) if v not in variants]
    if lost:
        differ.append(f"runs of {', '.join(map(str, lost))}, which this run does not train")
    return "; ".join(differ) or None


def _all_images(subset):
    """--subset as the runs use it: 0 for all the training images, as 60,000 is (accuracy_seeds.py
    and lenet_book.speed read it so too)."""
    whole = isinstance(subset, int) and not isinstance(subset, bool)
    return 0 if whole and subset >= TRAIN_IMAGES else subset


def print_table(variants, runs, repeats):
    best, summary = best_runs(runs), repeat_summary(runs)
    if repeats == 1:
        ratios = "text" in best  # a ratio to the text's loop needs a run of it that did not fail
        print(f"\n{'variant':>34} {'examples/sec':>13} {'train s':>8} {'setup s':>8} {'wall s':>7} "
              f"{'test acc':>8}" + (f" {'× text':>7}" if ratios else ""))
        for variant in variants:
            r = best.get(variant)
            if r is None:
                print(f"{variant:>34} failed")
                continue
            print(f"{variant:>34} {r['examples_per_sec']:13,.0f} {r['train_seconds']:8.2f} "
                  f"{r.get('setup_seconds', 0.0):8.1f} "
                  f"{r['wall_seconds']:7.1f} {r['test_acc']:8.3f}"
                  + (f" {r['ratio_to_text']:7.2f}" if ratios else ""))
        if not ratios:
            print("(no '× text' column: " + ("the text's loop failed" if "text" in variants
                                            else "'text' is not among --variants")
                  + ", so there is no run of it to compare with)")
        return
    print(f"\n{'variant':>34} {'examples/sec (mean ± std)':>26} {'× text (mean ± std)':>20} {'median':>7} "
          f"{'min':>5} {'max':>5} {'runs':>4}")
    for variant in variants:
        s = summary.get(variant)
        if s is None:
            print(f"{variant:>34} failed")
            continue
        speed = s["examples_per_sec"]
        ratio = s.get("ratio_to_text")
        ratio_text = (f"{ratio['mean']:10.2f} ± {ratio['std']:4.2f}   {ratio['median']:7.2f} "
                      f"{ratio['min']:5.2f} {ratio['max']:5.2f}") if ratio else f"{'(no text run)':>20}"
        print(f"{variant:>34} {speed['mean']:15,.0f} ± {speed['std']:8,.0f} {ratio_text} {speed['n']:4d}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, mps or auto (default: "
                        "the first CUDA GPU, else Apple's GPU, else the CPU)")
    parser.add_argument("--epochs", type=int, default=TEXT["num_epochs"])
    parser.add_argument("--repeats", type=int, default=1, help="run every variant this many times")
    # extend: a second --variants adds its variants (each checked, and named twice refused below)
    parser.add_argument("--variants", nargs="+", action="extend", choices=list(VARIANTS),
                        help="default: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in DEFAULTS.items())
                        + "; other devices: text fast")
    parser.add_argument("--data", default=str(ROOT / "data"), help="data root (default: <repo>/data)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="the seed of the initial weights and "
                        f"of the shuffling, kept in the --json record (default: {DEFAULT_SEED})")
    parser.add_argument("--subset", type=int, default=0,
                        help="train on the first N training images only (a quick check; default: all)")
    parser.add_argument("--json", help="also write the results to this file (a new one, or a record of this "
                        "script made with the same settings, which it replaces)")
    parser.add_argument("--replace", action="store_true", help="let --json replace a record of this script "
                        "made with other settings (device type, epochs, subset, repeats, seed, variants)")
    args = parser.parse_args(argv)
    try:
        return run_benchmark(parser, args)
    finally:
        release_records()  # the --json record, held for the whole run


def run_benchmark(parser, args) -> int:
    if args.replace and args.json is None:  # it would do nothing
        parser.error("--replace replaces the record given with --json; give --json too, or leave --replace out")
    if args.repeats < 1 or args.epochs < 1:
        parser.error("--repeats and --epochs must be at least 1")
    # Every option is checked here, before the first run: none fails half-way through the runs.
    device = try_device() if args.device == "auto" else check_device_option(parser, args.device, auto=True)
    variants = args.variants or DEFAULTS.get(device.type, ["text", "fast"])
    if device.type != "cuda" and any(needs_cuda(v) for v in variants):
        parser.error(f"{[v for v in variants if needs_cuda(v)]} record CUDA graphs: they need --device cuda")
    twice = sorted({v for v in variants if variants.count(v) > 1})
    if twice:
        parser.error(f"--variants names {' '.join(twice)} more than once; name each variant once, and "
                     "give --repeats N to run every variant N times")
    if not 0 <= args.seed <= SEED_MAX:
        parser.error(f"--seed must be a whole number from 0 to {SEED_MAX} (2**64 - 1, the largest seed "
                     f"torch takes), got {args.seed}")
    check_subset_option(parser, args.subset)
    args.given_subset, args.subset = args.subset, _all_images(args.subset)  # a full run, not a dry run
    if args.given_subset != args.subset:
        print(f"--subset {args.given_subset} is all the training images: a full run, not a dry run (the same "
              "as leaving it out)", flush=True)
    if args.json is not None:
        args.json = check_record_option(parser, args.json, is_speed_record, "a record of this speed benchmark")
        hold_record(parser, args.json)  # two runs on one record: the last to write would drop the other's runs
        earlier = read_record(args.json)  # read again now that no other run writes it
        if earlier is not None and not is_speed_record(earlier):
            parser.error(f"--json {args.json} was replaced by another kind of file while this run started; "
                         "give another --json; nothing was run")
        problem = earlier and not args.replace and settings_problem(earlier, device, args, variants)
        if problem:
            parser.error(f"--json {args.json} holds a record made with other settings ({problem}); this run "
                         "would replace it and its runs would be lost: nothing was run. Give the same settings "
                         "to measure them again, another --json, or --replace to replace it")
    check_data_option(parser, args.data)

    name = device_name(device)
    print(f"LeNet-5 on Fashion-MNIST, {args.epochs} epochs, batch {TEXT['batch_size']}, lr {TEXT['lr']}, "
          f"on {name} (torch {torch.__version__}, {torch.get_num_threads()} threads)", flush=True)
    # a rerun of the same settings keeps the earlier record's runs until it measures them again:
    # stopped half-way, it must not leave the record with only the runs it finished
    kept = earlier_runs(earlier, device, args, variants) if args.json else []
    if kept:
        print(f"{args.json} holds {len(kept)} runs of these settings: each is kept there until this run "
              "measures it again", flush=True)
    runs = []
    for repeat in range(args.repeats):
        for variant in variants:
            print(f"{variant} (run {repeat + 1} of {args.repeats}): {VARIANTS[variant][0]}", flush=True)
            try:
                runs.append(run_variant(variant, device, args.epochs, args.data, args.seed, repeat,
                                        args.subset))
            except Exception as error:  # one broken variant must not lose the others' figures
                print(f"  {variant} failed: {type(error).__name__}: {error}", flush=True)
                runs.append({"variant": variant, "description": VARIANTS[variant][0], "repeat": repeat,
                             "error": f"{type(error).__name__}: {error}"})
            if args.json:  # after every run, so that a run cut short keeps what it measured
                write_json(args.json, name, device, args, variants, runs, kept)

    print_table(variants, runs, args.repeats)
    if args.json:
        print(f"results written to {args.json}")
    return 0 if all(v in best_runs(runs) for v in variants) else 1


if __name__ == "__main__":
    sys.exit(main())
