"""Compiling a network before training, so that compilation and training are timed apart
(chapter 4, "Making LeNet train fast").

``torch.compile`` compiles lazily: the first call with a new batch shape, or in a new mode
(training, or evaluation without gradients), stops to compile. Left to itself, a trainer pays
for that inside its first timed epoch. ``compile_and_warm_up`` compiles first, with one training
step for each batch shape an epoch uses and one evaluation, puts the weights back, and returns
the compiled network and the seconds compilation took; training it afterwards compiles nothing.
The speed benchmark (``benchmarks/train_speed.py``) compiles every compiled variant this way.

The rest of the module renders the benchmark's committed records as the chapter's tables.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import math
import numbers
import re
import statistics
import time

import torch
from torch import nn

from lenet_book._grammar import _a_kind
from lenet_book.checks import (
    COMPILE_MODES,
    _check_fused_options,
    _check_network_for_training,
    _compiler_default,
    _input_problem,
    _is_flag,
    at_the_door,
    buffers_kept,
    check_flags,
    check_layers_built,
    check_network,
    check_number,
    check_pair,
    check_split,
    check_whole,
)
from lenet_book.device import synchronize
from lenet_book.results import (
    _absent,
    _failed,
    _is_seed_study,
    _plain_name,
    _read_record,
    _seed_studies,
    _shown,
    results_folder,
)
from lenet_book.train import evaluate, to_float, train_step

# Compiling imports torch.utils.cpp_extension, which warns on a machine without CUDA that it found
# no CUDA runtime: true, and beside the point when compiling for the CPU.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)


def compile_and_warm_up(net, train_data, eval_data=None, batch_size=256, amp_dtype=None,
                        channels_last=False, **compile_options):
    """``torch.compile(net)``, with its compilation done now: returns (compiled net, seconds).

    Runs one training step on a full batch and one on the short last batch of an epoch (if it
    has one), then evaluates a batch of ``eval_data``, as training will; then puts back the
    weights those steps changed. ``compile_options`` go to ``torch.compile``.
    """
    images, labels = train_data
    device = images.device
    net.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    start_weights = [p.detach().clone() for p in net.parameters()]
    synchronize(device)
    start = time.perf_counter()
    compiled = torch.compile(net, **compile_options)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.0)  # lr 0: the steps change nothing...
    loss_fn = nn.CrossEntropyLoss()
    tail = len(labels) % batch_size
    sizes = [min(batch_size, len(labels))] + ([tail] if tail and len(labels) > batch_size else [])
    net.train()
    for size in sizes:
        train_step(compiled, optimizer, loss_fn, to_float(images[:size]), labels[:size], amp_dtype)
    if eval_data is not None:
        evaluate(compiled, *eval_data)
    synchronize(device)
    seconds = time.perf_counter() - start
    with torch.no_grad():  # ...but put the weights back all the same
        for p, p0 in zip(net.parameters(), start_weights):
            p.copy_(p0)
    net.train()
    return compiled, seconds


def _check_compile_and_warm_up(net, train_data, eval_data=None, batch_size=256, amp_dtype=None,
                               channels_last=False, **compile_options):
    _check_own_names(compile_options)  # first: the other checks would read a default instead
    check_network(net)
    if hasattr(net, "_orig_mod"):  # torch.compile of a compiled network gives a function
        raise TypeError("compile_and_warm_up: net is already compiled (torch.compile, e.g. by an "
                        "earlier compile_and_warm_up): pass the network itself, net._orig_mod")
    check_layers_built(net, "be compiled and warmed up")
    _check_network_for_training(net, fused=False)  # as train: float32, trainable, not meta
    if any(type(m).__name__ == "RBF" for m in net.modules()):
        raise ValueError("compile_and_warm_up warms up with train_step's defaults, cross-entropy "
                         "and the largest score, which misread the 1998 network's RBF penalties "
                         "(the smallest wins; train_step refuses them); let train compile it "
                         "in its first epoch instead: net, options = "
                         "recipes.build(recipes.ORIGINAL); train(net, data, compile=True, "
                         "**options)")
    check_pair("train_data", train_data)
    if eval_data is not None:
        check_pair("eval_data", eval_data)
    check_whole("batch_size", batch_size)
    check_split("train_data", *train_data)  # uint8 pixels and labels 0-9 (one min/max)
    if eval_data is not None:
        check_split("eval_data", *eval_data)
        if eval_data[0].device != train_data[0].device:
            raise ValueError(f"compile_and_warm_up: eval_data is on {eval_data[0].device} but "
                             f"train_data on {train_data[0].device}; move both to one device")
    problem = _input_problem(net, *train_data[0].shape[1:])
    if problem:
        raise ValueError(f"compile_and_warm_up: net: {problem}")
    if eval_data is not None:
        problem = _input_problem(net, *eval_data[0].shape[1:])
        if problem:
            raise ValueError(f"compile_and_warm_up: eval_data: {problem}")
    _check_no_batch_of_one(net, len(train_data[1]), batch_size)
    check_flags(channels_last=channels_last)
    mode = compile_options.get("mode")
    if mode not in COMPILE_MODES:
        raise ValueError(f"mode {mode!r} is not a torch.compile mode; use one of "
                         f"{', '.join(repr(m) for m in COMPILE_MODES)}")
    known = [name for name in inspect.signature(torch.compile).parameters if name != "model"]
    for key in compile_options:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
            raise TypeError(f"compile_and_warm_up: {key}= is not an option of torch.compile"
                            + (f" (did you mean {close[0]}=?)" if close else "")
                            + f"; its options are {', '.join(known)}")
    _check_compile_values(compile_options)
    backend = compile_options.get("backend", "inductor")
    try:  # the backend as FusedStep checks it: one that torch.compile knows, or a function
        _check_fused_options({"backend": backend, "mode": mode, "bf16_layers": ()})
    except ValueError as error:
        from torch._dynamo import list_backends  # imported by _check_fused_options already

        known = list_backends(exclude_tags=())
        close = (difflib.get_close_matches(backend, known, n=1)
                 if isinstance(backend, str) and backend not in known else [])
        raise ValueError(f"compile_and_warm_up: {error}"
                         + (f"; did you mean backend={close[0]!r}?" if close else "")) from None


def _check_own_names(compile_options):
    """A keyword that is not torch.compile's but close to one of compile_and_warm_up's own
    parameters (batchsize=, eval_set=) is a misspelling of that parameter, not an option."""
    known = [name for name in inspect.signature(torch.compile).parameters if name != "model"]
    own = [name for name in inspect.signature(_check_compile_and_warm_up).parameters
           if name not in ("net", "compile_options")]
    for key in compile_options:
        close = (difflib.get_close_matches(key, own + known, n=1, cutoff=0.5)
                 if key not in known else [])
        if close and close[0] in own:
            raise TypeError(f"compile_and_warm_up() got an unexpected keyword argument {key!r}: "
                            f"did you mean {close[0]}=? It takes compile_and_warm_up(net, "
                            "train_data, eval_data=None, batch_size=256, amp_dtype=None, "
                            "channels_last=False, **compile_options), the options going to "
                            f"torch.compile ({', '.join(known)})")


def _check_compile_values(compile_options):
    """torch.compile's flags True or False ('no' would count as True), dynamic None, True or
    False, options a dict and not beside mode (mode itself is checked with the names)."""
    check_flags(**{name: compile_options[name] for name in ("fullgraph", "disable")
                   if name in compile_options})
    dynamic = compile_options.get("dynamic")  # torch asserts a Python bool, not numpy's
    if dynamic is not None and not isinstance(dynamic, bool):
        raise TypeError(f"dynamic must be None (let torch.compile decide), True or False, got "
                        f"{dynamic!r} ({_a_kind(dynamic)})"
                        + ("; write it without quotes" if isinstance(dynamic, str)
                           else "; numpy's bool is refused by torch.compile: write bool(dynamic)"
                           if _is_flag(dynamic) else ""))
    options = compile_options.get("options")
    if options is not None and not isinstance(options, dict):
        raise TypeError(f"options must be a dict of compiler settings, e.g. "
                        f"{{'max_autotune': True}}, got {options!r}")
    if options is not None and compile_options.get("mode") is not None:
        raise ValueError("torch.compile takes mode or options, not both: leave one out")
    if compile_options.get("disable"):  # as FusedStep(compile=False) refuses them
        ignored = [name for name, value in compile_options.items()
                   if name in ("backend", "mode", "options") and not _compiler_default(name, value)]
        if ignored:
            raise ValueError(f"compile_and_warm_up: disable=True turns torch.compile off, so "
                             f"{' and '.join(f'{name}=' for name in ignored)} would be ignored: "
                             "leave them out, or leave out disable=True")


def _check_no_batch_of_one(net, n, batch_size):
    """The warm-up trains on a full batch and on the short last one, as train does: batch
    normalisation cannot normalise a batch of one image in training."""
    if ((batch_size == 1 or n % batch_size == 1)
            and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())):
        where = ("every batch holds one image" if batch_size == 1 or n == 1
                 else "the last batch of every epoch holds one image")
        raise ValueError(f"compile_and_warm_up: with {n} images in batches of {batch_size}, "
                         f"{where}, and batch normalisation cannot normalise a batch of one; "
                         "choose a batch size that does not leave one image over, e.g. "
                         f"{batch_size + 1 if n % (batch_size + 1) != 1 else batch_size + 2}"
                         + (" (and at least 2 images)" if n < 2 else ""))


def _statistics_kept(bound):
    # the warm-up steps train batch norm's running statistics too: put them back with the weights
    return buffers_kept(bound.arguments["net"])


# Chapter 4 shows compile_and_warm_up as written above; at_the_door checks its arguments first.
compile_and_warm_up = at_the_door(compile_and_warm_up, _check_compile_and_warm_up,
                                  around=_statistics_kept)


# --- the benchmark's records, as chapter 4 shows them ---------------------------------------
# (pandas is imported where a table is made: the benchmark itself needs only the function above)

def load_result(name):
    """A committed benchmark record of benchmarks/results/ (``lenet_book.results``), as a dict."""
    name = _plain_name(name)
    if not isinstance(name, str) or not name or "/" in name or "\\" in name \
            or not name.endswith(".json"):
        raise ValueError(f"load_result takes the file name of a record in {results_folder()}, "
                         f"e.g. 'cpu.json', got {name!r}; the records are "
                         f"{', '.join(_speed_records())}")
    path = results_folder() / name
    if _absent(path):  # a file that is there but unusable (damaged, a folder...) is named below
        raise FileNotFoundError(f"no benchmark record {name!r} in {results_folder()}; the records "
                                f"are {', '.join(_speed_records()) or 'none'} (each written by a "
                                "script in benchmarks/)")
    record = _read_record(path)
    if _is_seed_study(record):  # the speed tables would say it is not what load_result gives
        raise ValueError(f"load_result: {name!r} is a seed study (it has 'results' of seeded "
                         "runs, not the 'runs' of a speed benchmark): load it with "
                         f"results.load_seed_study({name!r}) and show it with "
                         "results.seed_study_table(study, rows) (or compare its runs with "
                         "results.seed_study_pairs); the speed benchmark's records "
                         f"are {', '.join(_speed_records()) or 'none'}")
    return record


def _speed_records():
    """The records of the results folder that are not seed studies (results.load_seed_study
    reads those); an unusable file is listed, and named when it is loaded."""
    studies = set(_seed_studies())
    return [p.name for p in sorted(results_folder().glob("*.json")) if p.name not in studies]


def provenance(result):
    """One line under a table: device, torch, runs, date and commit of a benchmark record."""
    repeats = result.get("repeats", 1)
    runs = (f"{repeats} interleaved runs of each variant" if repeats > 1
            else "one run of each variant")
    date = result.get("date") or result.get("date_utc", "")[:10]
    commit = f", commit {result['commit']}" if result.get("commit") else ""
    dry = _dry_run(result)
    measured = f"measured {date}{commit}"
    unfinished = _unfinished(result)
    if unfinished:  # runs of two measurements, or fewer than planned: not one complete measurement
        mine, planned, earlier = unfinished
        measured = (f"UNFINISHED (the benchmark was stopped): {_runs(mine, planned)} {measured}"
                    + "".join(f"; {count} kept from an earlier record, {stamp}"
                              for stamp, count in earlier.items())
                    + (f"; the other {planned - mine} not measured"
                       if planned and not earlier and planned > mine else ""))
    return (f"{result['device']}, torch {result['torch']}, {result['epochs']} epochs"
            + (f", {dry}" if dry else "") + f", {runs}, {measured}")


def _unfinished(result):
    """A record that benchmarks/train_speed.py left unfinished (it says so in 'stopped': cut short,
    it keeps the earlier record's runs it had not measured again, each marked 'earlier_record'):
    (runs this one measured, runs it planned or None, {the earlier record in words: its runs}).
    None for a complete record, as every committed one is."""
    runs = [r for r in result["runs"] if isinstance(r, dict)]
    kept = [r["earlier_record"] for r in runs if r.get("earlier_record")]
    stopped = result.get("stopped")
    if not stopped and not kept:
        return None
    planned = re.search(r"of its (\d+) runs", stopped) if isinstance(stopped, str) else None
    earlier = {}
    for stamp in kept:
        stamp = {key: value for key, value in (stamp.items() if isinstance(stamp, dict) else ())
                 if isinstance(value, str) and value}
        words = ", ".join([f"measured {stamp['date']}" if "date" in stamp else "of an unknown date"]
                          + [f"{key} {stamp[key]}" for key in ("commit", "torch") if key in stamp
                             and (key != "torch" or stamp[key] != result.get("torch"))])
        earlier[words] = earlier.get(words, 0) + 1
    return len(runs) - len(kept), int(planned[1]) if planned else None, earlier


def _runs(mine, planned):
    """'1 of 4 runs', '2 runs'."""
    return f"{mine}" + (f" of {planned}" if planned else "") + (" run" if (planned or mine) == 1
                                                                  else " runs")


def _marked(name, result, *notes):
    """A table's index name with ``notes``, and a note where the record is unfinished (see
    _unfinished): the table would show runs of two measurements as one."""
    unfinished = _unfinished(result)
    if unfinished:
        mine, planned, earlier = unfinished
        date = result.get("date") or str(result.get("date_utc", ""))[:10]
        notes += (f"UNFINISHED: {_runs(mine, planned)} measured {date}"
                  + (f", {sum(earlier.values())} from an earlier record" if earlier else ""),)
    return f"{name} ({'; '.join(notes)})" if notes else name


_TRAIN_IMAGES = 60_000  # Fashion-MNIST's training set


def _dry_run(result):
    """'64 of 60,000 images (dry run)' for a record made with --subset (its speeds are mostly
    start-up, its accuracies of a few images); None for a full run (the committed records)."""
    subset = result.get("subset")
    if not subset or (isinstance(subset, int) and subset >= _TRAIN_IMAGES):  # every image
        return None
    if isinstance(subset, int) and not isinstance(subset, bool):
        return f"{subset:,} of {_TRAIN_IMAGES:,} images (dry run)"
    return "a subset of the training images (dry run)"


def _variant_header(result):
    """The tables' index name: 'variant', or for a --subset record a note that it is a dry run
    (and for an unfinished one that it is unfinished)."""
    dry = _dry_run(result)
    notes = [f"DRY RUN, {dry.removesuffix(' (dry run)')}"] if dry else []
    return _marked("variant", result, *notes)


def failures(result):
    """One short line per failed run: the variant and the first line of its error."""
    lines = []
    for run in result["runs"]:
        if _failed(run):
            error = run["error"].splitlines()[0]
            lines.append(f"no row for {run['variant']}: it failed with "
                         f"{error[:77] + '...' if len(error) > 80 else error}")
    return lines


def _compiles_in_timer(run):
    # records made before compilation was timed apart have no setup_seconds: there a
    # torch.compile variant compiled inside its first timed epoch
    return "setup_seconds" not in run and "compile" in run["variant"]


def benchmark_table(result, variants=None, flops=None):
    """One row per variant of a benchmark record: speed, ratio to the text's loop (median and
    range over the repeats, each ratio taken within its repeat), compile seconds (of the first
    repeat, then the median of the later ones, which reuse what the first compiled), training
    seconds and test accuracy; with ``flops`` (per run), the GFLOP/s that the speed means."""
    import pandas as pd

    runs = [r for r in result["runs"] if not _failed(r)]
    text = {r.get("repeat", 0): r for r in runs if r["variant"] == "text"}
    names = variants or list(dict.fromkeys(r["variant"] for r in runs))
    rows = []
    for name in names:
        mine = [r for r in runs if r["variant"] == name]
        if not mine:
            continue
        speed = statistics.median(r["examples_per_sec"] for r in mine)
        ratios = [r["examples_per_sec"] / text[r.get("repeat", 0)]["examples_per_sec"]
                  for r in mine if r.get("repeat", 0) in text]
        train_s = statistics.median(r["train_seconds"] for r in mine)
        row = {"variant": name, "what": mine[0]["description"]}
        if len(mine) > 1:
            row["examples/sec (median)"] = f"{speed:,.0f}"
            row["× text: median (min–max)"] = (f"{statistics.median(ratios):.2f} "
                                               f"({min(ratios):.2f}–{max(ratios):.2f})"
                                               if ratios else "")  # no run of the text's loop
        else:
            row["examples/sec"] = f"{speed:,.0f}"
            row["× text"] = f"{ratios[0]:.2f}" if ratios else ""
        if flops:
            row["GFLOP/s"] = _rate(flops / train_s / 1e9)
        row["train s"] = f"{train_s:.2f}"
        by_repeat = sorted(mine, key=lambda r: r.get("repeat", 0))
        setups = [r.get("setup_seconds", 0.0) for r in by_repeat]
        if any(map(_compiles_in_timer, mine)):
            row["compile s"] = "inside train s"
        elif len(setups) > 1 and max(setups) > 0:  # later repeats reuse the cached compilation
            row["compile s"] = f"{setups[0]:.1f}, then {statistics.median(setups[1:]):.1f}"
        else:
            row["compile s"] = f"{statistics.median(setups):.1f}"
        row["test acc"] = f"{statistics.median(r['test_acc'] for r in mine):.3f}"
        rows.append(row)
    return pd.DataFrame(rows).set_index("variant").rename_axis(_variant_header(result))


def _rate(gflops):
    """A GFLOP/s figure: whole numbers from 10 up, two significant digits below (0.62, not 0)."""
    return f"{gflops:,.0f}" if gflops >= 10 else f"{gflops:.2g}"


def paired_table(result, variants, baseline="fast"):
    """Each variant's speed over the baseline's in the same repeat, repeat by repeat, and what
    the repeats agree on: faster (or slower) in every repeat, or not."""
    import pandas as pd

    runs = [r for r in result["runs"] if not _failed(r)]
    known = sorted({r["variant"] for r in runs})
    if isinstance(variants, str):
        raise TypeError(f"paired_table takes a list of variants, e.g. [{variants!r}]")
    for name in [baseline, *variants]:
        if name not in known:
            raise ValueError(f"paired_table: no run of the variant {name!r} in this record; "
                             f"it has {', '.join(known)}")
    base = {r.get("repeat", 0): r["examples_per_sec"] for r in runs if r["variant"] == baseline}
    rows = []
    for name in variants:
        ratios = {r.get("repeat", 0): r["examples_per_sec"] / base[r.get("repeat", 0)]
                  for r in runs if r["variant"] == name and r.get("repeat", 0) in base}
        row = {"variant": name}
        row.update({f"repeat {k + 1}": f"{v:.2f}" for k, v in sorted(ratios.items())})
        values = list(ratios.values())
        row["in every repeat"] = ("one run: no verdict" if len(values) < 2
                                  else "faster" if min(values) > 1
                                  else "slower" if max(values) < 1 else "no")
        rows.append(row)
    return pd.DataFrame(rows).set_index("variant").rename_axis(_marked("variant", result))


def fused_table(result):
    """The fused-step record (one run of each variant): speed, ratio to the text's loop,
    training seconds, compile-and-record seconds, test accuracy."""
    import pandas as pd

    text_speed = next(r for r in result["runs"]
                      if r["variant"] == "text" and not _failed(r))["examples_per_sec"]
    what = {"text": "the text's loop", "fast-graph": "fast path, each epoch one CUDA graph",
            "fused": "fused step, no graph", "fused-graph": "fused step, each epoch one CUDA graph"}
    return pd.DataFrame([{
        "variant": r["variant"], "what": what.get(r["variant"], r.get("description", "")),
        "examples/sec": f"{r['examples_per_sec']:,.0f}",
        "× text": f"{r['examples_per_sec'] / text_speed:.2f}",
        "train s": f"{r['train_seconds']:.2f}",
        "compile and record s": f"{r.get('setup_seconds', 0.0):.1f}",
        "test acc": f"{r['test_acc']:.4f}"} for r in result["runs"] if not _failed(r)]
    ).set_index("variant").rename_axis(_variant_header(result))


def kernel_table(result, variants=("fast-graph", "fused-graph"), steps_per_epoch=235):
    """Kernels per step and GPU time in kernels per step, from the record's profiles, beside the
    wall time per step of the training run. ``steps_per_epoch``: 235 (60,000 images in batches
    of 256); for a --subset record it is the subset's own, ceil(subset / batch size)."""
    import pandas as pd

    runs = {r["variant"]: r for r in result["runs"] if not _failed(r)}
    steps = result["epochs"] * _steps_per_epoch(result, steps_per_epoch)
    return pd.DataFrame([{
        "variant": name,
        "kernels per step": f"{result['profiles'][name]['kernels_per_step']:.0f}",
        "kernel time per step (µs)": f"{result['profiles'][name]['kernel_us_per_step']:.0f}",
        "wall time per step (µs)": f"{runs[name]['train_seconds'] / steps * 1e6:.0f}"}
        for name in variants]).set_index("variant").rename_axis(_variant_header(result))


def _steps_per_epoch(result, steps_per_epoch):
    """The steps of one epoch of ``result``: the 235 of all 60,000 images would make a --subset
    record's wall time per step up to 100 times too small."""
    subset, batch = result.get("subset"), result.get("batch_size", 256)
    whole = lambda x: isinstance(x, int) and not isinstance(x, bool) and x > 0  # noqa: E731
    if steps_per_epoch == 235 and _dry_run(result) and whole(subset) and whole(batch):
        return -(-subset // batch)
    return steps_per_epoch


def compile_payoff(result, variant="fast-compile", baseline="fast"):
    """Repeat by repeat (chapter 4): the compile seconds of ``variant`` beside the training
    seconds it saved against ``baseline``'s run of the same repeat."""
    import pandas as pd

    runs = [r for r in result["runs"] if not _failed(r)]
    base = {r.get("repeat", 0): r["train_seconds"] for r in runs if r["variant"] == baseline}
    mine = sorted((r for r in runs if r["variant"] == variant and r.get("repeat", 0) in base),
                  key=lambda r: r.get("repeat", 0))
    return pd.DataFrame([{
        "repeat": r.get("repeat", 0) + 1,
        "compile s": f"{r.get('setup_seconds', 0.0):.1f}",
        f"train s, {baseline}": f"{base[r.get('repeat', 0)]:.2f}",
        f"train s, {variant}": f"{r['train_seconds']:.2f}",
        "train s saved": f"{base[r.get('repeat', 0)] - r['train_seconds']:.1f}"}
        for r in mine]).set_index("repeat").rename_axis(_marked("repeat", result))


def compile_and_train(result, variants):
    """Repeat by repeat (chapter 4): each variant's compile seconds, training seconds and their
    sum, so that a compiled variant is charged for its compilation."""
    import pandas as pd

    runs = sorted((r for r in result["runs"] if not _failed(r) and r["variant"] in variants),
                  key=lambda r: (r.get("repeat", 0), variants.index(r["variant"])))
    return pd.DataFrame([{
        "repeat": r.get("repeat", 0) + 1, "variant": r["variant"],
        "compile s": f"{r.get('setup_seconds', 0.0):.2f}",
        "train s": f"{r['train_seconds']:.2f}",
        "total s": f"{r.get('setup_seconds', 0.0) + r['train_seconds']:.2f}"}
        for r in runs]).set_index(["repeat", "variant"]).rename_axis([_marked("repeat", result),
                                                                      "variant"])


def epoch_losses(result, variants, repeat=0):
    """The training loss of every epoch of each variant's run in one repeat (chapter 4)."""
    import pandas as pd

    runs = {r["variant"]: r for r in result["runs"]
            if not _failed(r) and r.get("repeat", 0) == repeat}
    return pd.DataFrame({name: [h["loss"] for h in runs[name]["history"]] for name in variants},
                        index=pd.RangeIndex(1, len(runs[variants[0]]["history"]) + 1,
                                            name=_marked("epoch", result)))


# --- the records' helpers check what they are given (at_the_door): a record of load_result and
# variants it holds; the tables themselves are computed as written above.

_RECORD_FIX = ("give the record as load_result returns it (load it again, e.g. "
               "load_result('cpu.json'); if you built or edited it, keep each field as the "
               "benchmark writes it)")
# what a successful run holds, as benchmarks/train_speed.py writes it: (low, low_open, high)
_RUN_NUMBERS = {"examples_per_sec": (0.0, True, math.inf), "train_seconds": (0.0, True, math.inf),
                "setup_seconds": (0.0, False, math.inf), "test_acc": (0.0, False, 1.0)}


def _check_record(result, needs=()):
    if (not isinstance(result, dict) or not isinstance(result.get("runs"), list)
            or not all(isinstance(r, dict) and "variant" in r for r in result["runs"])):
        raise TypeError(f"result must be a benchmark record as load_result returns it (a dict "
                        f"with 'runs' of variants), e.g. load_result('cpu.json'), got a "
                        f"{type(result).__name__}"
                        + (" that is a seed study (of results.load_seed_study: it has "
                           "'results', not 'runs'), which results.seed_study_table(study, rows) "
                           "shows" if _is_seed_study(result)
                           else " without 'runs'" if isinstance(result, dict) else ""))
    missing = [key for key in needs if key not in result]
    if missing:
        raise ValueError(f"result: this record has no {', '.join(map(repr, missing))} (it was "
                         "made without them); use a record that has, e.g. one listed by "
                         "load_result")
    for key in ("repeats", "epochs"):
        if key in result:
            _as_written(check_whole, f"result[{key!r}]", result[key])
    for key in ("device", "torch", "date", "date_utc"):
        if key in result and not isinstance(result[key], str):
            raise TypeError(f"result[{key!r}] must be text (a str), got {_shown(result[key])} "
                            f"({_a_kind(result[key])}); {_RECORD_FIX}")
    for i, run in enumerate(result["runs"]):
        _check_run(i, run)
    _check_one_run_per_repeat(result)


def _check_one_run_per_repeat(result):
    """Each variant runs once per repeat, as results.repeat_summary requires: the tables pair a
    run with the others of its repeat ('repeat' missing counts as 0, as they read it), so two
    records merged, or repeats without their numbers, would be paired with the wrong runs."""
    seen = {}
    for i, run in enumerate(result["runs"]):
        if _failed(run):
            continue
        key = (run["variant"], run.get("repeat", 0))
        if key in seen:
            unnumbered = "repeat" not in run or "repeat" not in result["runs"][seen[key]]
            raise ValueError(f"result['runs'][{seen[key]}] and [{i}] are two runs of "
                             f"{key[0]!r} in repeat {key[1]}"
                             + (" (a run without 'repeat' counts as repeat 0)" if unnumbered
                                else "")
                             + ", but each variant runs once per repeat, and the tables take "
                             "each ratio within its repeat; give the runs of one benchmark "
                             "record (merged records: number their repeats apart)")
        seen[key] = i


def _as_written(check, name, value, *args):
    """check(name, value, *args), its message ending with how to get the record right."""
    try:
        check(name, value, *args)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{error}; {_RECORD_FIX}") from None


def _check_run(i, run):
    """One run of a record: its variant's name; a failed run's message; a successful run's
    numbers, each finite and in its range (a negative speed would make a table without a word)."""
    where = f"result['runs'][{i}]"
    if not isinstance(run["variant"], str):
        raise TypeError(f"{where}: a run's variant must be its name, a str such as 'fast', got "
                        f"{_shown(run['variant'])} ({_a_kind(run['variant'])}); "
                        f"{_RECORD_FIX}")
    where += f" ({run['variant']!r})"
    if _failed(run):
        error = run["error"]
        if not isinstance(error, str) or not error.strip():
            raise ValueError(f"{where} has error={_shown(error)}: a failed run's 'error' is the "
                             "message it failed with, and a run that did not fail has none (None "
                             f"or NaN there, a table's empty cell, count as none); {_RECORD_FIX}")
        return
    for key, (low, low_open, high) in _RUN_NUMBERS.items():
        if key in run:
            _as_written(check_number, f"{where}: {key}", run[key], low, high, low_open)
    if "repeat" in run:
        _as_written(check_whole, f"{where}: repeat", run["repeat"], 0)
    if "description" in run and not isinstance(run["description"], str):
        raise TypeError(f"{where}: description must be text (a str), got "
                        f"{_shown(run['description'])}; {_RECORD_FIX}")


def _check_runs_have(result, keys, variants=None, function="this table"):
    """Every successful run of ``variants`` (None: of all) holds ``keys``, which ``function``
    reads."""
    for i, run in enumerate(result["runs"]):
        if _failed(run) or (variants is not None and run["variant"] not in variants):
            continue
        missing = [key for key in keys if key not in run]
        if missing:
            raise ValueError(f"result['runs'][{i}] ({run['variant']!r}) has no "
                             f"{', '.join(map(repr, missing))}, which {function} reads; "
                             f"{_RECORD_FIX}")


def _known_variants(result):
    return sorted({r.get("variant") for r in result["runs"] if not _failed(r)} - {None},
                  key=str)


def _check_variants(result, variants, name="variants"):
    if isinstance(variants, (str, bytes)) or not isinstance(variants, (list, tuple)):
        raise TypeError(f"{name} must be a list of variant names, e.g. ['fast'], got {variants!r}")
    known = _known_variants(result)
    for variant in variants:
        if variant not in known:
            raise ValueError(f"{name}: no run of the variant {variant!r} in this record; it has "
                             f"{', '.join(map(str, known))}")
    twice = sorted({v for v in variants if list(variants).count(v) > 1}, key=str)
    if twice:
        raise ValueError(f"{name} lists {', '.join(map(repr, twice))} more than once, which "
                         "would give the same row twice; list each variant once")


def _check_some_variants(result, variants, function):
    """A list of variants that names at least one: an empty one would give an empty table."""
    _check_variants(result, variants)
    if not variants:
        known = ", ".join(map(str, _known_variants(result)))
        raise ValueError(f"{function}: variants is empty; name at least one variant of the "
                         f"record, e.g. ['fast'] (it has {known})")


def _check_variant(result, variant, name):
    """One variant's name, e.g. the baseline of a comparison."""
    if not isinstance(variant, str):
        raise TypeError(f"{name} must be the name of a variant, e.g. 'fast', got {variant!r} "
                        f"({_a_kind(variant)})")
    _check_variants(result, [variant], name)


def _check_benchmark_table(result, variants=None, flops=None):
    _check_record(result)
    if all(_failed(r) for r in result["runs"]):  # pandas would fail on a table of no rows
        lines = failures(result)
        more = f"; and {len(lines) - 2} more: see failures(result)" if len(lines) > 3 else ""
        raise ValueError("benchmark_table: this record has no successful run, so no row to show"
                         + (f" ({'; '.join(lines[:2] if more else lines)}{more})" if lines
                            else " (it has no runs)")
                         + "; rerun the benchmark (benchmarks/train_speed.py), or give a record "
                         "with successful runs, e.g. load_result('cpu.json')")
    if variants is not None:  # None: every variant of the record
        _check_some_variants(result, variants, "benchmark_table")
    if flops is not None:  # the floating-point operations of one run, divided by its seconds
        check_number("benchmark_table: flops, the FLOPs of one run,", flops)
    _check_runs_have(result, ("examples_per_sec", "train_seconds", "description", "test_acc"),
                     variants, "benchmark_table")
    _check_runs_have(result, ("examples_per_sec",), ["text"], "benchmark_table")  # its ratios
    if flops is not None:
        _check_flops_per_run(result, variants, flops)


_LEAST_GFLOPS = 0.01  # below this for every run, flops counts one image or step, not one run


def _check_flops_per_run(result, variants, flops):
    """benchmark_table's flops is of one whole run (per image × images × epochs): the FLOPs of
    one image or one step give rates that would all show as 0 (or close to it) GFLOP/s."""
    flops = float(flops)
    seconds = {}
    for run in result["runs"]:
        s = run.get("train_seconds")
        if (_failed(run) or (variants is not None and run["variant"] not in variants)
                or isinstance(s, bool) or not isinstance(s, numbers.Real)
                or not math.isfinite(s) or s <= 0):
            continue
        seconds.setdefault(run["variant"], []).append(s)
    if not seconds:
        return
    fastest = min(statistics.median(times) for times in seconds.values())  # as the rows take it
    if flops / fastest / 1e9 >= _LEAST_GFLOPS:
        return
    epochs = result.get("epochs")
    images = result.get("subset") or 60000
    size = (f"; this record's runs are {epochs} epoch(s) of {images:,} images, so flops = "
            f"FLOPs per image × {images} × {epochs}"
            if isinstance(epochs, numbers.Integral) and isinstance(images, numbers.Integral)
            else "")
    raise ValueError(f"benchmark_table: flops={flops:g} gives under {_LEAST_GFLOPS} GFLOP/s for "
                     f"every run (at most {flops / fastest / 1e9:.2g}, over {fastest:.3g} s): "
                     f"flops is the FLOPs of one whole run, per image × images × epochs, not "
                     f"of one image or one step{size} (chapter 4: flops_per_run = (forward + "
                     f"backward) / 256 * 60000 * 10)")


def _check_kernel_table(result, variants=("fast-graph", "fused-graph"), steps_per_epoch=235):
    _check_record(result)
    if isinstance(variants, (str, bytes)) or not isinstance(variants, (list, tuple)):
        _check_variants(result, variants)  # says what variants must be
    check_whole("kernel_table: steps_per_epoch", steps_per_epoch)
    missing = [key for key in ("profiles", "epochs") if key not in result]
    if missing:
        raise ValueError(f"result: this record has no {', '.join(map(repr, missing))} (it was "
                         f"made without them), so no kernel table of the variants {variants!r}; "
                         "use a record that has, e.g. one listed by load_result")
    _check_variants(result, variants)
    if not isinstance(result["profiles"], dict):
        raise TypeError(f"result['profiles'] must be a dict of kernel profiles by variant, got "
                        f"{_shown(result['profiles'])}; {_RECORD_FIX}")
    missing = [v for v in variants if v not in result["profiles"]]
    if missing:
        raise ValueError(f"variants: this record has no kernel profile of "
                         f"{', '.join(map(repr, missing))}; it has "
                         f"{', '.join(map(repr, result['profiles']))}")
    for name in variants:
        profile = result["profiles"][name]
        for key in ("kernels_per_step", "kernel_us_per_step"):
            if not isinstance(profile, dict) or key not in profile:
                raise ValueError(f"result['profiles'][{name!r}] has no {key!r}, which "
                                 f"kernel_table reads; {_RECORD_FIX}")
            _as_written(check_number, f"result['profiles'][{name!r}][{key!r}]", profile[key])
    _check_runs_have(result, ("train_seconds",), variants, "kernel_table")
    for key, what in (("subset", "training images"), ("batch_size", "images per step")):
        value = result.get(key)  # a --subset record's steps per epoch are counted from them
        if result.get("subset") and value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"result[{key!r}] must be a whole number of at least 1 (the {what} "
                             f"of this --subset record), got {_shown(value)}; {_RECORD_FIX}")


def _check_paired_table(result, variants, baseline="fast"):
    _check_record(result)
    _check_some_variants(result, variants, "paired_table")
    _check_variant(result, baseline, "baseline")
    _check_runs_have(result, ("examples_per_sec",), [*variants, baseline], "paired_table")


def _check_compile_payoff(result, variant="fast-compile", baseline="fast"):
    _check_record(result)
    _check_variant(result, variant, "variant")
    _check_variant(result, baseline, "baseline")
    _check_runs_have(result, ("train_seconds",), [variant, baseline], "compile_payoff")
    _check_compiles(result, variant)


def _check_compiles(result, variant):
    """compile_payoff's variant compiled before it was timed: its runs have compile seconds (the
    text's loop or the fast path has 0 in every run, and a record made before compilation was
    timed apart has none), else its table would show a 'payoff' of 0 compile seconds."""
    mine = [r for r in result["runs"] if not _failed(r) and r["variant"] == variant]
    if any(r.get("setup_seconds", 0) > 0 for r in mine):
        return
    compiled = [v for v in _known_variants(result)
                if any(r.get("setup_seconds", 0) > 0 for r in result["runs"]
                       if not _failed(r) and r["variant"] == v)]
    how = (f"e.g. compile_payoff(result, {compiled[0]!r}) (this record's compiled variants: "
           f"{', '.join(map(repr, compiled))})" if compiled else
           "a record that times compilation apart, e.g. load_result('cpu.json')")
    if any(map(_compiles_in_timer, mine)):
        raise ValueError(f"compile_payoff: the runs of {variant!r} in this record have no compile "
                         "seconds: it was made before compilation was timed apart, so they are "
                         f"inside its training seconds; use {how}")
    raise ValueError(f"compile_payoff: {variant!r} compiles nothing (no compile seconds in any "
                     "of its runs): compile_payoff compares a compiled variant, such as "
                     f"'fast-compile', with its eager baseline; use {how}")


def _check_compile_and_train(result, variants):
    _check_record(result)
    _check_some_variants(result, variants, "compile_and_train")
    _check_runs_have(result, ("train_seconds",), variants, "compile_and_train")


def _check_fused_table(result):
    _check_record(result)
    _check_variants(result, ["text"], "result")
    _check_runs_have(result, ("examples_per_sec", "train_seconds", "test_acc"), None,
                     "fused_table")
    runs = [r["variant"] for r in result["runs"] if not _failed(r)]
    several = next((v for v in runs if runs.count(v) > 1), None)
    if several is not None:  # its ratios are all taken to the first run of the text's loop
        raise ValueError(f"fused_table shows one run of each variant (a record of one repeat, "
                         f"e.g. load_result('fused-h200.json')), but this record has "
                         f"{runs.count(several)} runs of {several!r}; for a record of several "
                         "repeats use benchmark_table(result) (medians over the repeats) or "
                         "paired_table(result, variants) (each repeat's ratios)")


def _check_epoch_losses(result, variants, repeat=0):
    _check_record(result)
    _check_some_variants(result, variants, "epoch_losses")
    check_whole("epoch_losses: repeat", repeat, least=0)
    repeats = sorted({r.get("repeat", 0) for r in result["runs"]
                      if not _failed(r) and r.get("variant") in variants})
    if repeat not in repeats:
        raise ValueError(f"no repeat {repeat!r} of these variants in this record; the repeats are "
                         f"{', '.join(map(str, repeats))} (numbered from 0)")
    runs = {r["variant"]: r for r in result["runs"]
            if not _failed(r) and r.get("repeat", 0) == repeat and r["variant"] in variants}
    lacking = [v for v in variants if v not in runs]
    if lacking:
        raise ValueError(f"repeat {repeat} has no successful run of "
                         f"{', '.join(map(repr, lacking))} in this record (it failed or was not "
                         "run); leave it out, or choose another repeat")
    _check_runs_have(result, ("history",), variants, "epoch_losses")
    for name, run in runs.items():
        history = run["history"]
        if not isinstance(history, list) or not history or not all(
                isinstance(h, dict) and "loss" in h for h in history):
            raise ValueError(f"the run of {name!r} in repeat {repeat}: its history must be a "
                             f"list of its epochs, each a dict with its 'loss', got "
                             f"{_shown(history)}; {_RECORD_FIX}")
        for epoch, h in enumerate(history, 1):
            _as_written(check_number, f"the run of {name!r} in repeat {repeat}: the loss of "
                        f"epoch {epoch}", h["loss"], -math.inf)
    lengths = {name: len(run["history"]) for name, run in runs.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError("epoch_losses puts the variants' epochs side by side, but their runs "
                         "trained for different numbers of epochs ("
                         + ", ".join(f"{n}: {k}" for n, k in lengths.items())
                         + "); compare variants that trained for as many epochs")


provenance = at_the_door(provenance, lambda result: _check_record(
    result, ("device", "torch", "epochs")))
failures = at_the_door(failures, lambda result: _check_record(result))
benchmark_table = at_the_door(benchmark_table, _check_benchmark_table)
paired_table = at_the_door(paired_table, _check_paired_table)
fused_table = at_the_door(fused_table, _check_fused_table)
kernel_table = at_the_door(kernel_table, _check_kernel_table)
compile_payoff = at_the_door(compile_payoff, _check_compile_payoff)
compile_and_train = at_the_door(compile_and_train, _check_compile_and_train)
load_result = at_the_door(load_result)  # a misspelt argument is named, with the signature
epoch_losses = at_the_door(epoch_losses, _check_epoch_losses)
