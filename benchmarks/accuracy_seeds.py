"""The spread over seeds of every headline recipe: the text's, chapter 6's steps, chapter 5's.

    python benchmarks/accuracy_seeds.py --device cuda --seeds 20 --text-seeds 100 --workers 12 \
        --json benchmarks/results/seeds-gpu.json
    python benchmarks/accuracy_seeds.py --device cpu --seeds 5 --text-seeds 5   # about 2.5 hours here
    python benchmarks/accuracy_seeds.py --device cpu --seeds 2 --text-seeds 2 --epochs 1 --subset 3000  # dry run
    python benchmarks/accuracy_seeds.py --study batch-norm-final --device cpu --seeds 8 \
        --json benchmarks/results/batch-norm-final-cpu.json   # about 11 minutes on 2 CPU cores

Three studies, each run from seeds 0, 1, 2, ...:
1. "text, 60,000 images": the text's recipe on the whole training set, scored on the test set, as
   chapter 3 does (this is the distribution the d2l figures are draws from);
2. chapter 6: the text's recipe and then each step of ``MODERN_STEPS``, trained on 50,000 images
   and scored on the 10,000 held-out validation images (``split_validation``); each step is kept
   or dropped by ``recipes.keep_change`` (a one-sided paired t-test over the shared seeds,
   p < ``recipes.ALPHA``) on the validation accuracy, in order, so later steps build on the
   kept ones. Two ablations split step 4 into its parts. The test
   accuracy is recorded too, but no decision reads it;
3. chapter 5: the 1998 network with the paper's settings, and with the alternatives the chapter
   mentions (j = 1 or 100 in the loss, a first learning rate of 0.01), on the validation split.
``--study batch-norm-final`` runs only a fourth study: chapter 6's final recipe with and without
batch normalisation from the same seeds (a greedy order can hide a change that helps later on),
interleaved seed by seed, with their paired test.
Runs go to a pool of worker processes (on a GPU several runs share the device). Writes a JSON
record (device, torch, commit, date, every run's accuracies, mean/std/min/max) and prints tables;
one run at a time writes a record (another is refused), and none is written when no run started
within --budget. ``--json X`` replaces only a record of the same study made with the same
--epochs, --subset and device, whose runs this run trains again (as many seeds or more), unless
given --replace. ``--resume X --json X`` continues a study in its own file, with as many seeds as
X holds or more (fewer would leave runs out of it: refused).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # lenet_book, tools and benchmarks._options from this checkout

from benchmarks._options import (  # noqa: E402
    check_data_option,
    check_device_option,
    check_record_option,
    check_subset_option,
    hold_record,
    read_record,
    release_records,
    write_record,
)
from lenet_book import recipes  # noqa: E402
from lenet_book.book import commit as current_commit  # noqa: E402

_worker = {}

# What each study's record says it is ("what"): --json replaces only a record of its own study,
# --resume continues only a record of the three studies.
WHAT = "accuracy over seeds (benchmarks/accuracy_seeds.py)"
WHAT_BATCH_NORM = ("chapter 6's final recipe with and without batch normalisation, same seeds "
                   "(benchmarks/accuracy_seeds.py --study batch-norm-final)")
# The options that only --study all uses, with their defaults (None: not given).
ALL_ONLY = {"resume": None, "text_seeds": 5, "background_workers": 1, "variant_seeds": 0}

# The steps chapter 6's greedy pass kept (benchmarks/results/accuracy-seeds-h200.json, "kept_steps");
# --study batch-norm-final retests batch normalisation on them, and the chapter's final recipe adds it.
FINAL_STEPS = ["ReLU (learning rate 0.1)", "max pooling",
               "SGD + Nesterov momentum, weight decay, one-cycle", "label smoothing 0.1"]

# The two entries of --study batch-norm-final, without and with batch normalisation.
BATCH_NORM_ENTRIES = ("final recipe", "final recipe + batch normalisation")

# The entries of --study all besides chapter 6's steps (recipes.MODERN_STEPS), by name.
BASELINE = "LeNet-5 as in the text"
TEXT_FULL = "text's recipe, 60,000 images"
DEAD_RELU = "ReLU, learning rate 0.9"
STEP_4_PARTS = (("one-cycle schedule only (peak 0.2)", {"lr": 0.2, "one_cycle": True}),
                ("Nesterov momentum 0.9 + weight decay, constant rate 0.02",
                 {"lr": 0.02, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}))
PAPER = "original LeNet-5 (paper's settings)"
CHAPTER_5 = {PAPER: recipes.ORIGINAL,
             "original LeNet-5, j = 1": {**recipes.ORIGINAL, "j": 1.0},
             "original LeNet-5, j = 100": {**recipes.ORIGINAL, "j": 100.0},
             "original LeNet-5, first learning rate 0.01": {**recipes.ORIGINAL, "lr": 0.01}}


# The epochs of every recipe the studies train (recipes.build's default: 10): --epochs of that
# number, like --subset of all 60,000 images, changes nothing, and makes no dry run.
OWN_EPOCHS = {recipe.get("num_epochs", 10) for recipe in (
    recipes.TEXT, *CHAPTER_5.values(), recipes.modern_recipe(FINAL_STEPS),
    *({**recipes.TEXT, **changes} for _, changes in (*recipes.MODERN_STEPS, *STEP_4_PARTS)))}


def _no_change(subset, epochs):
    """(subset, epochs) with 0 for an option that changes nothing: all 60,000 images, or every
    recipe's own number of epochs."""
    return (0 if subset >= 60_000 else subset), (0 if {epochs} == OWN_EPOCHS else epochs)


_UNCHANGED = {"--subset": "all the training images", "--epochs": "every recipe's own number of epochs"}


def _as_given(option, value, given):
    """``option``'s ``value`` (as _no_change made it) in words, quoting the number typed or recorded
    (``given``) where that was made 0: '10 (every recipe's own number of epochs)', not '0'."""
    return f"{given} ({_UNCHANGED[option]})" if given not in (None, value) else f"{value}"


def _recorded_given(record, option):
    """The --subset or --epochs a record was written with, as it holds it (0: none)."""
    return record.get({"--subset": "subset", "--epochs": "epochs_override"}[option]) or 0


def _recorded_options(record):
    """(--subset, --epochs) of a record as this run compares them (0: none), those that change
    nothing as 0: a record written before they made no dry run is of the full study too."""
    subset, epochs = record.get("subset") or 0, record.get("epochs_override") or 0
    whole = lambda x: isinstance(x, int) and not isinstance(x, bool)  # noqa: E731
    return (_no_change(subset, 0)[0] if whole(subset) else subset,
            _no_change(0, epochs)[1] if whole(epochs) else epochs)


def _seeds_option(name, study="all"):
    """The option that says how many seeds ``study`` trains of its entry ``name`` (None: the
    study has no such entry)."""
    if study == "batch-norm-final":
        return "--seeds" if name in BATCH_NORM_ENTRIES else None
    if name == TEXT_FULL:
        return "--text-seeds"
    if name in CHAPTER_5 and name != PAPER:
        return "--variant-seeds"
    steps = {BASELINE, DEAD_RELU, PAPER, *(part for part, _ in STEP_4_PARTS),
             *(step for step, _ in recipes.MODERN_STEPS)}
    return "--seeds" if name in steps else None


def seeds_of(name, args):
    """How many seeds (0, 1, ...) the study (--study all unless ``args.study`` says) trains of its
    entry ``name``."""
    return {"--text-seeds": args.text_seeds, "--variant-seeds": args.variant_seeds or args.seeds,
            "--seeds": args.seeds}.get(_seeds_option(name, getattr(args, "study", "all")), 0)


def save(out, path):
    """Write a study's record as JSON (when --json names a file), whole, through a temporary file;
    the script's exit status."""
    if path:
        write_record(out, path, indent=1)
        print("wrote", path)
    return 0


def _init_worker(device, data_root, subset):
    try:
        _load(device, data_root, subset)
    except Exception as error:  # raised here, the pool would start new workers forever: a hang
        _worker["failed"] = f"{type(error).__name__}: {error}"


def _load(device, data_root, subset):
    import torch

    from lenet_book.fast import load_fashion_mnist_tensors
    from lenet_book.train import split_validation

    if device == "cuda":  # many workers share the CPU that feeds one GPU
        torch.set_num_threads(1)
    train_data, test_data = load_fashion_mnist_tensors(data_root, device)
    if subset:
        train_data = (train_data[0][:subset], train_data[1][:subset])
        test_data = (test_data[0][:subset], test_data[1][:subset])
    fit, valid = split_validation(train_data, size=len(train_data[1]) // 6)
    _worker.update(device=device, full=train_data, fit=fit, valid=valid, test=test_data)


def images_used(subset):
    """How many training images each run sees: all 60,000, or the first --subset of them."""
    return min(subset, 60_000) if subset else 60_000


def dry_run_note(subset, epochs=0):
    """The record's and the table's words for a --subset or --epochs run (None for a full one):
    the entries keep the full study's names, which the chapters read."""
    subset, epochs = _no_change(subset, epochs)
    if not subset and not epochs:
        return None
    options = " ".join(f"{option} {value}" for option, value in (("--subset", subset), ("--epochs", epochs))
                       if value)
    what = []
    if subset:
        what.append(f"used only the first {images_used(subset):,} training images and the first "
                    f"{min(subset, 10_000):,} test images")
    if epochs:
        what.append(f"trained for {epochs} epoch{'s' if epochs != 1 else ''}, not its recipe's own")
    return f"a dry run ({options}): every run {' and '.join(what)}; the entries keep the full study's names"


def validation_split(subset):
    """The record's words for the validation images: the last sixth of the training images used
    (all 60,000, or the first --subset of them)."""
    used = images_used(subset)
    return f"last 1/6 of the training images ({used // 6:,} of {used:,})"


def _run(job):
    """One training run: (study, name, recipe, seed, on_full, epochs, deadline) -> accuracies."""
    from lenet_book.train import evaluate, train

    study, name, recipe, seed, on_full, epochs, deadline = job
    if "failed" in _worker:  # the worker could not load the data: the parent stops with its words
        return {"study": study, "name": name, "seed": seed, "failed": _worker["failed"]}
    if time.time() > deadline:
        return {"study": study, "name": name, "seed": seed, "skipped": True}
    recipe = {**recipe, **({"num_epochs": epochs} if epochs else {})}
    net, options = recipes.build(recipe, seed)
    graph = (_worker["device"] == "cuda" and "scheduler" not in options and "batch_transform" not in options)
    history, seconds = train(net, _worker["full"] if on_full else _worker["fit"], cuda_graph=graph, **options)
    kw = {"predict": options["predict"]} if "predict" in options else {}
    result = {"study": study, "name": name, "seed": seed, "seconds": seconds,
              "train_acc": history[-1]["train_acc"], "loss": history[-1]["loss"],
              "test_acc": evaluate(net, *_worker["test"], **kw)}
    if not on_full:
        result["valid_acc"] = evaluate(net, *_worker["valid"], **kw)
    return result


def finished(runs):
    """The runs a pool returns, one by one; a worker that could not start ends the program with
    its message (nothing is written)."""
    for run in runs:
        if "failed" in run:
            sys.exit(f"accuracy_seeds.py: a worker process could not load the data ({run['failed']}); "
                     "nothing was written")
        yield run


def by_seed(entry, key="valid_acc"):
    """{seed: accuracy} of a recorded entry, as recipes.paired_test takes it."""
    return dict(zip(entry["seeds"], entry.get(key, [])))


def batch_norm_final(args, commit, started):
    """The final recipe with and without batch normalisation, from the same seeds."""
    import torch

    from lenet_book.device import device_name
    final = recipes.modern_recipe(FINAL_STEPS)
    settings = dict(zip(BATCH_NORM_ENTRIES, (final, {**final, "batch_norm": True})))
    deadline = time.time() + args.budget
    jobs = [("batch norm, final recipe", name, recipe, seed, False, args.epochs, deadline)
            for seed in range(args.seeds) for name, recipe in settings.items()]  # interleaved
    context = mp.get_context("spawn")
    with context.Pool(args.workers, _init_worker, (args.device, args.data, args.subset)) as pool:
        runs = [run for run in finished(pool.imap(_run, jobs)) if not run.get("skipped")]
    paired = set.intersection(*({run["seed"] for run in runs if run["name"] == name}
                                for name in settings))  # seeds that both settings finished
    if not paired:
        sys.exit(f"no seed was trained with both settings within --budget {args.budget:g} seconds: give a "
                 "larger --budget; nothing was written")
    runs = [run for run in runs if run["seed"] in paired]
    results = {}
    for name, recipe in settings.items():
        mine = [run for run in runs if run["name"] == name]
        results[name] = {"recipe": recipe, "seeds": [run["seed"] for run in mine],
                         "seconds": [run["seconds"] for run in mine],
                         **{key: [run[key] for run in mine]
                            for key in ("valid_acc", "test_acc", "train_acc")}}
        print(f"{name:36s} valid {recipes.summarize(results[name]['valid_acc'])}")
    without, with_bn = results.values()
    out = {"what": WHAT_BATCH_NORM,
           "device": device_name(args.device), "torch": torch.__version__, "commit": commit,
           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
           "validation": validation_split(args.subset),
           "epochs_override": args.epochs or None, "subset": args.subset or None,
           "wall_seconds": round(time.time() - started), "results": results}
    if args.subset or args.epochs:  # the tables and load_seed_study say so too
        out["dry_run"] = dry_run_note(args.subset, args.epochs)
    if len(without["seeds"]) >= 2 and without["seeds"] == with_bn["seeds"]:
        for key in ("valid_acc", "test_acc"):
            out[f"paired_{key}"] = recipes.paired_test(by_seed(without, key), by_seed(with_bn, key))
        out["kept"] = recipes.keep_change(by_seed(without), by_seed(with_bn))
        print("paired test on validation accuracy:", out["paired_valid_acc"], "kept:", out["kept"])
    print(f"done in {out['wall_seconds']} s")
    return save(out, args.json)


def check_arguments(parser, args):
    """Every option, checked before anything runs (a worker that fails at start-up would be
    started again and again); the parser's error names what is wrong."""
    if args.commit is not None and not args.commit.strip():  # it would read as no --commit: HEAD
        parser.error("--commit is empty: give the commit the record is of, e.g. --commit $(git rev-parse HEAD), "
                     "or leave --commit out to record the current one; nothing was run")
    if args.replace and args.json is None:  # it would do nothing
        parser.error("--replace replaces the record given with --json; give --json too, or leave --replace out")
    if args.study == "batch-norm-final":
        unused = [f"--{key.replace('_', '-')}" for key in ALL_ONLY if getattr(args, key) is not None]
        if unused:
            them = "it" if len(unused) == 1 else "them"
            parser.error(f"--study batch-norm-final does not use {', '.join(unused)} (it trains the final "
                         "recipe with and without batch normalisation, --seeds seeds each, in --workers "
                         f"processes): leave {them} out, or run --study all")
    for key, default in ALL_ONLY.items():
        if getattr(args, key) is None:
            setattr(args, key, default)
    for option, value, least, zero in (("--seeds", args.seeds, 1, ""), ("--workers", args.workers, 1, ""),
                                       ("--background-workers", args.background_workers, 1, ""),
                                       ("--text-seeds", args.text_seeds, 0, " (0: none)"),
                                       ("--variant-seeds", args.variant_seeds, 0, " (0: as many as --seeds)"),
                                       ("--epochs", args.epochs, 0, " (0: each recipe's own)")):
        if value < least:
            parser.error(f"{option} must be at least {least}{zero}, got {value}")
    cores = os.cpu_count() or 1
    for option, value in (("--workers", args.workers), ("--background-workers", args.background_workers)):
        if value > 4 * cores:  # each worker is a process that loads torch and the whole data set
            parser.error(f"{option} must be at most {4 * cores} (4 per CPU core; this machine has "
                         f"{cores}): each worker is a process that loads torch and the data set, got "
                         f"{value}; e.g. {option} {min(cores, 12)}")
    if not args.budget > 0:  # NaN too
        parser.error(f"--budget must be a positive number of seconds (no run starts after it), got {args.budget}")
    check_subset_option(parser, args.subset, least=6, why="1/6 of them are held out for validation")
    check_device_option(parser, args.device)
    given = args.subset, args.epochs
    args.subset, args.epochs = _no_change(*given)  # the full study: its record is no dry run
    args.given = {"--subset": given[0], "--epochs": given[1]}  # the errors below quote them as typed
    dry = " ".join(f"{option} {value}" for option, value in (("--subset", args.subset), ("--epochs", args.epochs))
                   if value)  # the other option may still make a dry run
    for option, value, now in (("--subset", given[0], args.subset), ("--epochs", given[1], args.epochs)):
        if value != now:
            print(f"{option} {value} is {_UNCHANGED[option]}: "
                  + (f"it changes nothing (the same as leaving it out), but {dry} makes this a dry run" if dry
                     else "the full study, not a dry run (the same as leaving it out)"), flush=True)
    if args.json is not None:
        is_mine = lambda record: isinstance(record, dict) and record.get("what") == (  # noqa: E731
            WHAT_BATCH_NORM if args.study == "batch-norm-final" else WHAT)
        args.json = check_record_option(parser, args.json, is_mine, f"a record of --study {args.study}")
        hold_record(parser, args.json)  # two runs on one record: the last to write would drop the other's runs
    args.done = {} if args.resume is None else resumed_runs(parser, args.resume, args)  # (name, seed) -> run
    if args.json is not None and args.resume and os.path.realpath(args.json) == os.path.realpath(args.resume):
        dropped = not args.replace and dropped_runs(args)  # the record written holds this run's runs alone
        if dropped:
            which, keep = dropped
            parser.error(f"--json {args.json} is the --resume file, and the record written would leave out "
                         f"{which}: nothing was run, so nothing of it is lost. "
                         + (f"Give {keep} to keep them and continue the study, or w" if keep else "W")
                         + "rite the record to another --json (or give --replace to leave them out)")
    elif args.json is not None and not args.replace:
        earlier = read_record(args.json)  # read again now that no other run writes it
        if earlier is not None and not is_mine(earlier):
            parser.error(f"--json {args.json} was replaced by another kind of file while this run started; "
                         "give another --json; nothing was run")
        problem = earlier and settings_problem(earlier, args)
        if problem:
            parser.error(f"--json {args.json} holds a record made with other settings ({problem}); this run "
                         "would replace it and its runs would be lost: nothing was run. Give the same settings "
                         "to train them again"
                         + (f", --resume {args.json} to continue it" if args.study == "all" else "")
                         + ", another --json, or --replace to replace it")
    check_data_option(parser, args.data)  # the data the workers load: checked once, here


def _same_commit(theirs, ours):
    """Two `git describe` names of one commit (one hash may be shorter; '-dirty' set aside), or
    either unknown (a copy without git): nothing to tell apart."""
    theirs, ours = (name.removesuffix("-dirty") for name in (theirs, ours))
    return "unknown" in (theirs, ours) or theirs.startswith(ours) or ours.startswith(theirs)


def _resumed_code(earlier, args):
    """The commit and torch of a resumed record's runs, when they are not this run's (None
    otherwise): the record written names them beside this run's, as ``resumed_from``, so that
    no resumed run is credited to code it never ran on."""
    import torch

    ours = getattr(args, "commit", None) or current_commit()
    commit, version = earlier.get("commit"), earlier.get("torch")
    other_commit = isinstance(commit, str) and not _same_commit(commit, ours)
    other_torch = isinstance(version, str) and version != torch.__version__
    if not (other_commit or other_torch):
        return None
    return {"commit": commit, "torch": version, "date": earlier.get("date"),
            "runs": "the runs this record resumed were made there; the others at this record's commit"}


def resumed_runs(parser, path, args):
    """{(name, seed): run} of the earlier record ``path`` (--resume); a file that is not a record of
    --study all, or one trained with another --epochs or --subset, or on another device than
    ``args.device`` (when given), is refused, naming why."""
    where = f"--resume {path}"
    use = ("give a record that this script wrote with --json (--study all), or leave --resume out to "
           "train every run")
    if not path:
        parser.error(f"--resume is empty (''): {use}")
    if os.path.exists(path) and not (os.path.isfile(path) or os.path.isdir(path)):  # reading would wait
        parser.error(f"{where} is a device, pipe or socket, not a file; {use}")
    try:
        earlier = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        parser.error(f"{where}: no such file; {use}")
    except IsADirectoryError:
        parser.error(f"{where} is a folder; {use}")
    except OSError as error:
        parser.error(f"{where} cannot be read ({error.strerror}); {use}")
    except ValueError as error:  # not JSON, not text
        parser.error(f"{where} is not JSON ({error}); {use}")
    except RecursionError:  # json's own limit: no record is nested so deep
        parser.error(f"{where} is damaged: its JSON is nested too deeply for Python to read; "
                     f"restore the file, or leave --resume out")
    if not isinstance(earlier, dict) or earlier.get("what") != WHAT or not isinstance(earlier.get("results"), dict):
        kind = ("a record of --study batch-norm-final, which --resume cannot continue"
                if isinstance(earlier, dict) and earlier.get("what") == WHAT_BATCH_NORM
                else f"not a record of --study all (its \"what\" is not {WHAT!r})")
        parser.error(f"{where} is {kind}; {use}")
    subset, epochs = _recorded_options(earlier)
    for theirs, option, value in ((epochs, "--epochs", args.epochs), (subset, "--subset", args.subset)):
        if theirs != value:
            recorded = _recorded_given(earlier, option)
            same = f"give {option} {theirs}" if theirs else f"leave {option} out"
            typed = getattr(args, "given", {}).get(option)
            this_run = (f"{option} left out ({_UNCHANGED[option]})" if value == 0 and not typed
                        else f"{option} {_as_given(option, value, typed)}")
            parser.error(f"{where} was trained with {option} {_as_given(option, theirs, recorded)}, this run "
                         f"with {this_run}: "
                         f"its runs and these would be mixed; {same}, or leave --resume out")
    if getattr(args, "device", None) is not None:  # the record written names one device for every run
        from lenet_book.device import device_name

        ours, theirs = device_name(args.device), earlier.get("device")
        if theirs != ours:
            trained_on = f"on {theirs}" if isinstance(theirs, str) else "on a device it does not name"
            parser.error(f"{where} was trained {trained_on}, this run trains on {ours} (--device {args.device}): "
                         "its runs and these would be mixed in a record that names one device; run it on the "
                         "same device, or leave --resume out")
    args.resumed_from = _resumed_code(earlier, args)
    if args.resumed_from:
        print(f"note: {where}'s runs were made at commit {args.resumed_from['commit']} with torch "
              f"{args.resumed_from['torch']}; the record written names them as resumed_from", flush=True)
    done = {}
    # each entry's recipe: a run is reused only for the same recipe (an earlier step decided otherwise
    # changes the recipes of the steps after it)
    args.resumed_recipes = {name: entry.get("recipe") for name, entry in earlier["results"].items()
                            if isinstance(entry, dict)}
    spent = earlier.get("wall_seconds")  # the time of the resumed runs counts in the study's
    args.resumed_wall_seconds = (spent if isinstance(spent, (int, float)) and not isinstance(spent, bool)
                                 and math.isfinite(spent) and spent >= 0 else 0)
    for name, entry in earlier["results"].items():
        try:
            runs = entry.get("runs") or [
                {"name": name, "seed": seed, "seconds": entry["seconds_per_run"],
                 **{key: entry[key][i] for key in ("valid_acc", "test_acc", "train_acc") if key in entry}}
                for i, seed in enumerate(entry["seeds"])]
            for run in runs:
                if (isinstance(run["seed"], bool) or not isinstance(run["seed"], int)
                        or not isinstance(run["seconds"], (int, float))):
                    raise TypeError
                problem = _impossible(run)
                if problem:  # summarize would fail on it once the workers have trained
                    parser.error(f"{where} is damaged: its entry {name!r}, seed {run['seed']}: "
                                 f"{problem}; restore the file, or leave --resume out")
                done[(name, run["seed"])] = {**run, "resumed": True}
        except (AttributeError, IndexError, KeyError, TypeError):
            parser.error(f"{where} is damaged: its entry {name!r} does not hold runs as --json writes them "
                         "(each with a whole-number 'seed', its 'seconds' and accuracies); restore the file, or "
                         "leave --resume out")
    return done


def settings_problem(record, args):
    """How the earlier record ``record`` (of this study) was made otherwise than this run would
    make it, or which of its runs this run does not train, in words (None: this run trains again
    every run it holds, with the same settings)."""
    from lenet_book.device import device_name

    subset, epochs = _recorded_options(record)
    given = getattr(args, "given", {})  # as typed
    differ = [f"{option} {_as_given(option, theirs, _recorded_given(record, option))} (this run: "
              f"{_as_given(option, ours, given.get(option))})" for option, theirs, ours in (
                  ("--epochs", epochs, args.epochs), ("--subset", subset, args.subset)) if theirs != ours]
    ours = device_name(args.device)
    if record.get("device") != ours:
        theirs = record.get("device") if isinstance(record.get("device"), str) else "a device it does not name"
        differ.append(f"trained on {theirs} (this run: {ours}, --device {args.device})")
    runs = _recorded_runs(record)
    if runs is None:
        differ.append("results this script cannot read as it writes them (each entry with its 'seeds')")
    else:
        dropped = dropped_runs(args, runs)
        if dropped:
            which, keep = dropped
            differ.append(f"{which}, which this run does not train" + (f" ({keep} trains them)" if keep else ""))
    return "; ".join(differ) or None


def _recorded_runs(record):
    """{(name, seed): None} of every run the record ``record`` holds, or None where its results are
    not as --json writes them."""
    results = record.get("results")
    if not isinstance(results, dict):
        return None
    runs = {}
    for name, entry in results.items():
        seeds = entry.get("seeds") if isinstance(entry, dict) else None
        if not isinstance(seeds, list) or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
            return None
        runs.update(((name, seed), None) for seed in seeds)
    return runs


def dropped_runs(args, done=None):
    """The runs of the --resume record (``args.done``, or ``done``: its (name, seed) keys) that this
    run's record would not hold (a seed beyond --seeds, --text-seeds or --variant-seeds, or an
    entry this study does not train): (which, in words; the options that keep them, in words or
    ''), or None."""
    done = args.done if done is None else done
    study = getattr(args, "study", "all")
    dropped = {}
    for name, seed in done:
        if not 0 <= seed < seeds_of(name, args):
            dropped.setdefault(name, []).append(seed)
    if not dropped:
        return None
    needs = {}  # option -> the seeds it must give to keep every run
    for name, seeds in dropped.items():
        option = _seeds_option(name, study)
        if option and min(seeds) >= 0:
            needs[option] = max(needs.get(option, 0), max(seeds) + 1)
    if args.variant_seeds == 0 and needs.get("--variant-seeds", 0) <= needs.get("--seeds", args.seeds):
        needs.pop("--variant-seeds", None)  # --variant-seeds 0 trains as many as --seeds
    shown = [f"{name!r}" + (f", seed{'s' if len(seeds) > 1 else ''} {_seeds_in_words(sorted(seeds))}"
                            if _seeds_option(name, study) else ", an entry this study does not train")
             for name, seeds in dropped.items()]
    which = (f"{sum(map(len, dropped.values()))} of its {len(done)} runs ({'; '.join(shown[:4])}"
             + (f"; and {len(shown) - 4} more entries" if len(shown) > 4 else "") + ")")
    return which, " ".join(f"{option} {count}" for option, count in needs.items())


def _seeds_in_words(seeds):
    """Sorted seeds in words: '3' , '1 to 19', '0, 4, 7'."""
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]} to {seeds[-1]}"
    return ", ".join(map(str, seeds[:8])) + (", ..." if len(seeds) > 8 else "")


def _impossible(run):
    """What no run that --json wrote holds (an accuracy outside [0, 1], seconds that are negative
    or not finite), in words, or None."""
    seconds = run["seconds"]
    if isinstance(seconds, bool) or not 0 <= seconds < float("inf"):  # NaN too
        return f"its 'seconds' must be a finite number of seconds, at least 0, not {seconds!r}"
    for key in ("valid_acc", "test_acc", "train_acc"):
        value = run.get(key, 0.5)
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not 0 <= value <= 1):  # NaN too
            return (f"its {key!r} must be an accuracy, a fraction in [0, 1] such as 0.85, not "
                    f"{value!r:.40}")
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--study", choices=("all", "batch-norm-final"), default="all",
                        help="all: the three studies below; batch-norm-final: only the final "
                        "recipe with and without batch normalisation")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per recipe of chapters 5 and 6")
    # the options of --study all alone default to None, so that one given to the other study is named
    parser.add_argument("--text-seeds", type=int, help="seeds of the text's recipe on 60,000 images "
                        f"(default {ALL_ONLY['text_seeds']})")
    parser.add_argument("--workers", type=int, default=1, help="processes for chapter 6's chain of steps")
    parser.add_argument("--background-workers", type=int,
                        help="processes for the studies that run beside it (text on 60,000 images, chapter 5; "
                        f"default {ALL_ONLY['background_workers']})")
    parser.add_argument("--variant-seeds", type=int,
                        help="seeds of chapter 5's alternatives (default: --seeds)")
    parser.add_argument("--epochs", type=int, default=0, help="override every recipe's epochs (dry runs)")
    parser.add_argument("--subset", type=int, default=0, help="use only this many images (dry runs)")
    parser.add_argument("--budget", type=float, default=1e9, help="start no run after this many seconds")
    parser.add_argument("--data", default=str(ROOT / "data"))
    parser.add_argument("--commit", default=None, help="commit to record (default: git rev-parse HEAD)")
    parser.add_argument("--json", help="write the results here (a new file, or a record of the same study "
                        "made with the same --epochs, --subset and device, which it replaces)")
    parser.add_argument("--replace", action="store_true", help="let --json replace a record of the same study "
                        "made with other settings (--epochs, --subset, device, fewer seeds)")
    parser.add_argument("--resume", help="an earlier JSON of this script, trained on this device: its runs are "
                        "kept, only missing (recipe, seed) runs are trained; --json may name the same file "
                        "when the seeds given keep every run it holds")
    args = parser.parse_args(argv)
    try:
        check_arguments(parser, args)  # every option, before any worker starts
        return run_study(args)
    finally:
        release_records()  # the --json record, held for the whole run


def run_study(args):
    """--study all, or the one study --study names, with the options check_arguments checked."""
    import torch

    from lenet_book.device import device_name
    commit = args.commit or current_commit()
    deadline = time.time() + args.budget
    started = time.time()
    if args.study == "batch-norm-final":
        return batch_norm_final(args, commit, started)
    results = {}
    done = args.done  # (name, seed) -> run, from --resume
    if args.resume:
        print(f"resuming {len(done)} runs from {args.resume}", flush=True)
    if args.subset or args.epochs:
        print(dry_run_note(args.subset, args.epochs), flush=True)

    trained = {"new": 0, "skipped": 0}  # runs that finished here, runs not started within --budget
    unfinished = []  # entries none of whose runs started within --budget: left out of the record

    def record(name, study, recipe, runs, on_full, kept=None):
        runs = list(runs)
        trained["skipped"] += sum(1 for r in runs if r.get("skipped"))
        trained["new"] += sum(1 for r in runs if not r.get("skipped") and not r.get("resumed"))
        runs = sorted([r for r in runs if not r.get("skipped")], key=lambda r: r["seed"])
        entry = {"study": study, "recipe": recipe, "train_images": "full" if on_full else "fit",
                 "runs": runs,
                 "seeds": [r["seed"] for r in runs], "kept": kept,
                 "seconds_per_run": sum(r["seconds"] for r in runs) / max(len(runs), 1)}
        for key in ("valid_acc", "test_acc", "train_acc"):
            values = [r[key] for r in runs if key in r]
            if values:
                entry[key] = values
                entry[key.replace("_acc", "")] = recipes.summarize(values)
        if runs:
            results[name] = entry
        else:  # every run skipped by --budget: an entry with no seeds would read as damaged
            unfinished.append(name)
        stats = entry.get("valid") or entry.get("test")
        if stats:
            print(f"{name:55s} n={stats['n']:3d} {'valid' if 'valid' in entry else 'test'} "
                  f"{stats['mean']:.4f} ± {stats['std']:.4f} [{stats['min']:.3f}, {stats['max']:.3f}]"
                  + ("" if kept is None else f"  kept: {kept}"), flush=True)
        return entry

    resumed_recipes = getattr(args, "resumed_recipes", {})

    def reused(name, recipe, seed):
        """Whether the --resume record's run of (name, seed) stands for this one: same recipe."""
        return (name, seed) in done and resumed_recipes.get(name) == json.loads(json.dumps(recipe))

    def jobs(study, name, recipe, seeds, on_full=False):
        stale = [seed for seed in range(seeds) if (name, seed) in done and not reused(name, recipe, seed)]
        if stale:
            print(f"retraining {len(stale)} runs of {name!r}: the --resume record trained them with another "
                  "recipe (an earlier step was decided otherwise)", flush=True)
        return [(study, name, recipe, seed, on_full, args.epochs, deadline) for seed in range(seeds)
                if not reused(name, recipe, seed)]

    def with_done(name, recipe, seeds, runs):
        return [done[(name, seed)] for seed in range(seeds) if reused(name, recipe, seed)] + list(runs)

    context = mp.get_context("spawn")
    init = (_init_worker, (args.device, args.data, args.subset))
    with context.Pool(args.workers, *init) as pool, context.Pool(args.background_workers, *init) as side:
        run_all = lambda jobs: list(finished(pool.map(_run, jobs)))  # noqa: E731
        # Independent studies start at once; chapter 6's chain runs step by step beside them.
        full_study = f"text, {images_used(args.subset):,} images"
        text_full = side.map_async(_run, jobs(full_study, TEXT_FULL, recipes.TEXT,
                                              seeds_of(TEXT_FULL, args), on_full=True))
        background = {name: side.map_async(_run, jobs("chapter 5", name, recipe, seeds_of(name, args)))
                      for name, recipe in CHAPTER_5.items()}
        dead = side.map_async(_run, jobs("chapter 6", DEAD_RELU, {**recipes.TEXT, "activation": "relu"},
                                         args.seeds))
        current_name, current = BASELINE, dict(recipes.TEXT)
        runs = run_all(jobs("chapter 6", current_name, current, args.seeds))
        current_stats = record(current_name, "chapter 6", current, with_done(current_name, current, args.seeds, runs),
                               False, True)
        kept_steps = []
        for name, changes in recipes.MODERN_STEPS:
            if name.startswith("SGD + Nesterov"):  # its parts, each on its own, on the recipe so far
                for part, part_changes in STEP_4_PARTS:
                    part_recipe = {**current, **part_changes}
                    part_runs = run_all(jobs("chapter 6", part, part_recipe, args.seeds))
                    record(part, "chapter 6 (parts of step 4)", part_recipe,
                           with_done(part, part_recipe, args.seeds, part_runs), False)
            candidate = {**current, **changes}
            runs = with_done(name, candidate, args.seeds, run_all(jobs("chapter 6", name, candidate, args.seeds)))
            entry = record(name, "chapter 6", candidate, runs, False)
            paired = (args.seeds >= 2 and entry.get("valid", {}).get("n") == args.seeds
                      and entry["seeds"] == current_stats.get("seeds"))
            if paired and "valid" in current_stats:
                entry["paired"] = recipes.paired_test(by_seed(current_stats), by_seed(entry))
                entry["kept"] = recipes.keep_change(by_seed(current_stats), by_seed(entry))
                print(f"{'':55s} kept: {entry['kept']}", flush=True)
                if entry["kept"]:
                    current, current_stats = candidate, entry
                    kept_steps.append(name)
        record(DEAD_RELU, "chapter 6", {**recipes.TEXT, "activation": "relu"},
               with_done(DEAD_RELU, {**recipes.TEXT, "activation": "relu"}, args.seeds, finished(dead.get())), False)
        for name, result in background.items():  # as many seeds as were trained: --variant-seeds
            record(name, "chapter 5", CHAPTER_5[name],
                   with_done(name, CHAPTER_5[name], seeds_of(name, args), finished(result.get())), False)
        record(TEXT_FULL, full_study, recipes.TEXT,
               with_done(TEXT_FULL, recipes.TEXT, seeds_of(TEXT_FULL, args), finished(text_full.get())), True)

    out = {"what": WHAT, "device": device_name(args.device),
           "torch": torch.__version__, "commit": commit,
           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
           "validation": validation_split(args.subset),
           "epochs_override": args.epochs or None, "subset": args.subset or None,
           "kept_steps": kept_steps, "wall_seconds": round(time.time() - started), "results": results}
    if args.subset or args.epochs:  # the tables and load_seed_study say so too
        out["dry_run"] = dry_run_note(args.subset, args.epochs)
    if getattr(args, "resumed_from", None):  # resumed runs of other code: named, not credited to this
        out["resumed_from"] = args.resumed_from
    if args.resume:  # the study's time: the resumed record's and this run's
        out["wall_seconds_this_run"] = out["wall_seconds"]
        out["wall_seconds"] = round(out["wall_seconds"] + args.resumed_wall_seconds)
    if trained["skipped"] and not trained["new"]:  # an empty study would replace the record, and name it damaged
        sys.exit(f"no run started within --budget {args.budget:g} seconds (it is in seconds; no run starts "
                 "after it): give a larger --budget; nothing was written"
                 + (f" ({args.json} is as it was)" if args.json and os.path.exists(os.path.realpath(args.json))
                    else ""))
    print(f"done in {out.get('wall_seconds_this_run', out['wall_seconds'])} s"
          + (f" ({out['wall_seconds']} s with the resumed record's)" if args.resume else "")
          + f"; kept: {kept_steps}")
    if unfinished:
        again = f"--resume {args.json} --json {args.json}" if args.json else "--resume FILE"
        print(f"{len(unfinished)} entries had no run within --budget {args.budget:g} seconds and are left out of "
              f"the record: {', '.join(map(repr, unfinished))}; to train them, run again with {again} and a "
              "larger --budget", flush=True)
    return save(out, args.json)


if __name__ == "__main__":
    sys.exit(main())
