"""The committed measurements: where they are (in a checkout and in an installed copy, as on
Colab), and how the speed benchmark (``benchmarks/train_speed.py``) sums up its runs.

Chapter 4 renders the result files; ``best_runs`` and ``repeat_summary`` turn a benchmark's
runs into the figures it shows.
"""

from __future__ import annotations

import codecs
import errno
import inspect
import math
import numbers
import os
import stat
import statistics
from pathlib import Path

from lenet_book._grammar import _a_kind

PACKAGE = Path(__file__).resolve().parent


def results_folder() -> Path:
    """benchmarks/results/ of the repository.

    In a checkout (and with ``pip install -e .``) that is the folder itself. ``pip install``
    from the repository, as a chapter's Colab set-up cell does, packages a copy of it as
    ``lenet_book/benchmark_results`` (see pyproject.toml), because there is no checkout there.
    """
    packaged = PACKAGE / "benchmark_results"
    folder = packaged if packaged.is_dir() else PACKAGE.parent / "benchmarks" / "results"
    try:
        found = folder.is_dir()
    except OSError as error:  # a folder on the way that this user cannot enter, a link loop
        fix = (f"give this user access to the folders on the way (chmod a+rx {folder.parent})"
               if isinstance(error, PermissionError) else "check the folders on the way to it")
        raise ValueError(f"The benchmark results at {folder} cannot be read: "
                         f"{error.strerror or error}; {fix}") from None
    if not found:
        raise FileNotFoundError(
            f"No benchmark results at {folder}. Install lenet_book from the book's repository "
            "(pip install 'lenet-book @ git+<repository URL>') or run from a checkout of it.")
    return folder


# --- reading a record: each way a file can be unusable is named, with its fix ----------------

def _restore(path):
    """How to get a committed record back: from git in a checkout, by reinstalling elsewhere."""
    path = Path(path)
    if path.parent.name == "benchmark_results":  # the copy an installed lenet_book packages
        return ("reinstall lenet_book to restore it (pip install --force-reinstall "
                "'lenet-book @ git+<repository URL>')")
    return f"restore it from git: `git checkout -- benchmarks/results/{path.name}`"


def _absent(path):
    """True only when nothing at all is at ``path`` (not even a broken link): the record is not
    there, rather than there and unusable."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError, ValueError):  # ValueError: a NUL in the name
        return True
    except OSError as error:
        return error.errno == errno.ENAMETOOLONG
    return False


def _read_record(path):
    """The JSON record at ``path``. A file that is there but unusable raises ValueError naming
    it, what is wrong (damaged, empty, not UTF-8, unreadable, a folder, a looping link) and the
    fix; a symbolic link to nothing raises FileNotFoundError."""
    import json
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:  # os.lstat found something: a link whose target does not exist
        raise FileNotFoundError(f"The record {path} is a symbolic link to "
                                f"{os.readlink(path)}, which does not exist; remove the link "
                                f"and {_restore(path)}") from None
    except PermissionError:  # os.stat needs to enter the folder, not to read the file
        raise ValueError(f"The record {path} cannot be read: no permission to enter its folder "
                         f"{path.parent}; give this user access (chmod a+rx {path.parent})"
                         ) from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise ValueError(f"The record {path} is a symbolic link that loops (it leads back "
                             f"to itself); remove the link and {_restore(path)}") from None
        raise ValueError(f"The record {path} cannot be read: {error.strerror or error}; "
                         f"{_restore(path)}") from None
    if stat.S_ISDIR(mode):
        # moved aside, not deleted: what someone put in it is kept
        raise ValueError(f"The record {path} is a folder, not a file; move the folder aside "
                         f"(mv {path} {path}.folder) and {_restore(path)}")
    if not stat.S_ISREG(mode):
        raise ValueError(f"The record {path} is not a regular file (a pipe or a device); "
                         f"remove it and {_restore(path)}")
    try:
        data = path.read_bytes()
    except PermissionError:
        raise ValueError(f"The record {path} cannot be read: no permission; give this user "
                         f"read access (chmod a+r {path})") from None
    except OSError as error:
        raise ValueError(f"The record {path} cannot be read: {error.strerror or error}; "
                         f"{_restore(path)}") from None
    # a byte-order mark (an editor such as Notepad saved it) is no damage: read past it
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    if not data[bom:].strip():
        raise ValueError(f"The record {path} is empty"
                         f"{' (white space only)' if data[bom:] else ''}; {_restore(path)}")
    try:
        text = data[bom:].decode("utf-8")
    except UnicodeDecodeError as error:
        at = error.start + bom  # in the file, as a hex editor shows it
        raise ValueError(f"The record {path} is not UTF-8 text (byte {data[at]:#04x} "
                         f"at position {at}): it is damaged; {_restore(path)}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        cut = " (it ends too soon: cut short?)" if error.pos >= len(text.rstrip()) else ""
        raise ValueError(f"The record {path} is damaged (JSON error at line {error.lineno}, "
                         f"column {error.colno}: {error.msg}){cut}; {_restore(path)}") from None
    except RecursionError:  # brackets nested thousands deep: no record is written so
        raise ValueError(f"The record {path} is damaged (its JSON is nested too deep to read); "
                         f"{_restore(path)}") from None


def _run_list(runs):
    """The runs as a list (a generator is read once, for every check); anything but a
    collection of runs is named."""
    if isinstance(runs, (str, bytes, dict)) or not hasattr(runs, "__iter__"):
        raise TypeError(f"runs must be the benchmark's runs, a list of dicts (a record's "
                        f"'runs'), got {_a_kind(runs)}")
    if hasattr(runs, "columns") and hasattr(runs, "to_dict"):  # iterating one gives its columns
        # not converted here: a column that only some runs have ('error') fills NaN into the rest
        raise TypeError(f"runs is {_a_kind(runs)}, not the benchmark's runs: give the "
                        "list of dicts it was made from (the record's 'runs', as load_result "
                        "returns it)")
    return _read_once(runs, "runs", "for no runs, pass []")


def _read_once(values, param, empty):
    """``values`` (a collection, or an iterator read here once) as a list. A generator read
    before reads as nothing, which would pass for an empty list (``empty`` says what one means):
    it is named, and so is another iterator that yields nothing (one used up reads the same)."""
    if inspect.isgenerator(values) and inspect.getgeneratorstate(values) == inspect.GEN_CLOSED:
        raise ValueError(f"{param} is a generator that has been used up; pass a list: a "
                         "generator is read once, and this one was read before (e.g. by an "
                         f"earlier call), so it would give nothing; make the list once, "
                         f"{param} = list(...), and pass that each time ({empty})")
    iterator = not inspect.isgenerator(values) and iter(values) is values
    listed = list(values)
    if iterator and not listed:
        raise ValueError(f"{param} is an iterator that yields nothing (one that has been used "
                         "up reads the same); pass a list: make it once, "
                         f"{param} = list(...), and pass that each time ({empty})")
    return listed


def _failed(run):
    """A run that failed has its 'error'; None or NaN there (a table's empty cell, e.g. runs
    read back from a DataFrame with to_dict('records')) is no error."""
    error = run.get("error")
    return "error" in run and error is not None and not (isinstance(error, float)
                                                         and math.isnan(error))


def _succeeded(runs, needs=("variant", "examples_per_sec")):
    """The runs that did not fail; runs that are not records of the benchmark are named."""
    succeeded = [r for r in runs if not (isinstance(r, dict) and _failed(r))]
    for run in succeeded:
        missing = [key for key in needs if not isinstance(run, dict) or key not in run]
        if missing:
            raise ValueError(f"runs: a run lacks {', '.join(map(repr, missing))}: each run must "
                             f"be a dict with {', '.join(map(repr, needs))} (or 'error'), got "
                             f"{run!r}")
    for run in runs:
        if isinstance(run, dict) and "variant" in run and not isinstance(run["variant"], str):
            raise TypeError(f"runs: a run's variant must be its name, a str such as 'text', got "
                            f"{run['variant']!r} ({_a_kind(run['variant'])})")
    for run in succeeded:
        repeat = run.get("repeat", 0)
        if "repeat" in needs and (isinstance(repeat, bool)
                                  or not isinstance(repeat, numbers.Integral)):
            raise TypeError(f"runs: a run's repeat must be its whole number (0, 1, ...), got "
                            f"{repeat!r} ({_a_kind(repeat)}) in the run of "
                            f"{run['variant']!r}")
    return succeeded


def _plain_name(name):
    """A file name given as a path (pathlib.Path('cpu.json')) without a folder part: as a str,
    as the loaders take it; anything else is returned as it is, for them to name."""
    if isinstance(name, os.PathLike) and not isinstance(os.fspath(name), bytes) \
            and Path(name).name == os.fspath(name):
        return os.fspath(name)
    return name


def _check_baseline(baseline, runs=()):
    """The variant the ratios are taken to: a name of one of the runs. One whose runs all failed
    leaves the ratios out, as documented; so does 'text' with no run at all (a benchmark run
    without the text's loop). Any other name that no run has is a typo, and is named."""
    if not isinstance(baseline, str):
        raise TypeError(f"baseline must be the name of a variant, e.g. 'text', got {baseline!r} "
                        f"({_a_kind(baseline)})")
    variants = list(dict.fromkeys(r["variant"] for r in runs
                                  if isinstance(r, dict) and "variant" in r))
    if variants and baseline != "text" and baseline not in variants:
        raise ValueError(f"baseline: no run of {baseline!r}; the runs' variants are "
                         f"{', '.join(map(repr, variants))}: give one of them")


def _finite(number):
    """math.isfinite, with a whole number too large for a float (10**400) counted as not finite
    rather than raising OverflowError."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


def _shown(value, limit=60):
    """repr(value), cut short: a speed of 10**400 would fill the message, and a whole number of
    more than 4,300 digits has no repr at all."""
    try:
        text = repr(value)
    except ValueError:
        return f"<{_a_kind(value)} too long to print>"
    return text if len(text) <= limit else f"{text[:limit // 2]}...{text[-limit // 2:]}"


def _check_speeds(succeeded):
    """Every successful run's speed is a finite number above 0, as the benchmark measures it."""
    for r in succeeded:
        speed = r["examples_per_sec"]
        if isinstance(speed, bool) or not isinstance(speed, numbers.Real) \
                or not (_finite(speed) and speed > 0):
            raise (ValueError if isinstance(speed, numbers.Real) and not isinstance(speed, bool)
                   else TypeError)(
                f"runs: the run of {r.get('variant')!r} (repeat {r.get('repeat', 0)}) has "
                f"examples_per_sec={_shown(speed)}, but it must be a finite number above 0 (one "
                "a float can hold), the speed the benchmark measured; give the runs as "
                "load_result returns them, or mark a failed run with 'error'")


def _check_one_run_per_repeat(succeeded):
    """Two runs of a variant under one repeat number (two records merged) would pair every
    ratio of that repeat with whichever came last."""
    seen = set()
    for r in succeeded:
        key = (r["variant"], r["repeat"])
        if key in seen:
            raise ValueError(f"runs: two runs of {r['variant']!r} have repeat {r['repeat']!r}; "
                             "each variant runs once per repeat, so the ratio of a repeat would "
                             "be taken to the wrong run. Give the runs of one benchmark record, "
                             "or number the repeats of merged records apart")
        seen.add(key)


_ONE_RECORD = ("best_runs takes the runs of one record (one machine): give one record's runs, "
               "e.g. best_runs(speed.load_result('cpu.json')['runs']), and call it once per "
               "record to compare machines")


def _check_one_record(succeeded):
    """best_runs compares runs across repeats: runs of two records joined (a CPU's and a GPU's)
    would divide one machine's speed by the other's text loop. The runs carry no device, but a
    record's runs of a variant share its description, and either all have a repeat number or
    none do (records written before repeats)."""
    described = {}
    for r in succeeded:
        text = r.get("description")
        if isinstance(text, str):
            first = described.setdefault(r["variant"], text)
            if text != first:
                raise ValueError(f"runs: the runs of {r['variant']!r} have two descriptions, "
                                 f"{first!r} and {text!r}: they come from two records (e.g. "
                                 f"runs of a CPU and of a GPU joined), and ratio_to_text would "
                                 f"divide one machine's speed by the other's text loop; "
                                 f"{_ONE_RECORD}")
    numbered = {"repeat" in r for r in succeeded}
    if len(numbered) > 1:
        with_, without = (next(r["variant"] for r in succeeded if ("repeat" in r) is has)
                          for has in (True, False))
        raise ValueError(f"runs: some runs have a repeat number (e.g. one of {with_!r}) and "
                         f"some have none (e.g. one of {without!r}): they come from two records, "
                         f"made by different versions of the benchmark (e.g. runs of a CPU and of "
                         f"a GPU joined); {_ONE_RECORD}")


def best_runs(runs, baseline="text"):
    """The fastest successful run of each variant, with ``ratio_to_text``: its examples/sec over
    the fastest baseline run's (left out when the baseline has no successful run; a baseline
    that no run names is refused, except 'text', which a benchmark may run without).

    ``runs`` are the benchmark's records: dicts with "variant" and "examples_per_sec", or with
    "error" for a run that failed. The records returned are copies.
    """
    runs = _run_list(runs)
    succeeded = _succeeded(runs)
    _check_baseline(baseline, runs)
    _check_speeds(succeeded)
    _check_one_record(succeeded)
    best = {}
    for r in succeeded:
        if r["examples_per_sec"] > best.get(r["variant"], {}).get("examples_per_sec", 0):
            best[r["variant"]] = dict(r)
    if baseline in best:
        for r in best.values():
            r["ratio_to_text"] = r["examples_per_sec"] / best[baseline]["examples_per_sec"]
    return best


def _spread(values):
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": mean, "std": std, "median": statistics.median(values), "min": min(values),
            "max": max(values), "n": len(values)}


def repeat_summary(runs, baseline="text"):
    """Per variant, over the repeats: examples/sec and the ratio to the baseline, each as mean,
    standard deviation (n - 1), median, min, max and n.

    The ratio is taken repeat by repeat (each run has a "repeat" number): a variant's run over the
    baseline's run of the same repeat, which ran beside it in the same process, so that a
    machine that is busier in one repeat than in another slows both sides of that ratio. So a
    variant may have only one successful run per repeat.
    """
    runs = _run_list(runs)
    succeeded = _succeeded(runs, ("variant", "examples_per_sec", "repeat"))
    _check_baseline(baseline, runs)
    _check_speeds(succeeded)
    _check_one_run_per_repeat(succeeded)
    baseline_speed = {r["repeat"]: r["examples_per_sec"]
                      for r in succeeded if r["variant"] == baseline}
    summary = {}
    for variant in dict.fromkeys(r["variant"] for r in succeeded):
        mine = [r for r in succeeded if r["variant"] == variant]
        entry = {"examples_per_sec": _spread([r["examples_per_sec"] for r in mine])}
        ratios = [r["examples_per_sec"] / baseline_speed[r["repeat"]]
                  for r in mine if r["repeat"] in baseline_speed]
        if ratios:
            entry["ratio_to_text"] = _spread(ratios)
        summary[variant] = entry
    return summary


# The seed study (benchmarks/accuracy_seeds.py): chapter 5 renders its record with these.

def load_seed_study(name="accuracy-seeds-h200.json"):
    """The seed study's record: {"device", "torch", "date", "validation", "results"}."""
    name = _plain_name(name)
    _check_file_name(name)
    if not isinstance(name, str):
        known = _seed_studies()
        raise TypeError(f"name must be the file name of a seed study, e.g. "
                        f"{(known or ['accuracy-seeds-h200.json'])[0]!r}, got {name!r} "
                        f"({_a_kind(name)})")
    if not name.endswith(".json"):  # a log beside the records is intact, not a damaged record
        raise ValueError(f"load_seed_study takes the file name of a seed study in "
                         f"{results_folder()}, a .json record, e.g. 'accuracy-seeds-h200.json', "
                         f"got {name!r}; the seed studies are {_studies_named()}")
    path = results_folder() / name
    if _absent(path):
        raise FileNotFoundError(f"name: no seed study {name!r} in {results_folder()}; the seed "
                                f"studies are {_studies_named()}")
    record = _read_record(path)
    if not _is_seed_study(record):
        speed = isinstance(record, dict) and "runs" in record
        raise ValueError(f"load_seed_study: {name!r} is not a seed study (it has no 'results' "
                         "of seeded runs)"
                         + (f": it is a speed benchmark's record, which speed.load_result("
                            f"{name!r}) reads" if speed else "")
                         + f"; the seed studies are {_studies_named()}")
    if _recipe_header(record) != "recipe":  # its tables say so too
        import warnings
        options = ", ".join(_dry_run_options(record)) or "dry_run"
        how = " and ".join(how for option, how in (
            ("--subset", "on a few images"),
            ("--epochs", "for one number of epochs, not each recipe's own")) if option in options
        ) or "as a dry run"
        warnings.warn(f"load_seed_study: {name!r} is a dry run of accuracy_seeds.py "
                      f"({options}), trained {how}: its accuracies are not the study's",
                      stacklevel=2)
    return record


def _is_seed_study(record):
    return isinstance(record, dict) and isinstance(record.get("results"), dict)


def _seed_studies():
    """The records in the results folder that are seed studies, by what they hold (--json of
    benchmarks/accuracy_seeds.py may name them anything, e.g. batch-norm-final-cpu.json)."""
    import json
    found = []
    for path in sorted(results_folder().glob("*.json")):
        try:
            if _is_seed_study(json.loads(path.read_text(encoding="utf-8-sig"))):  # as _read_record
                found.append(path.name)
        except (OSError, ValueError, RecursionError):  # unusable: named when it is loaded
            continue
    return found


def _studies_named():
    return (f"{', '.join(_seed_studies()) or 'none'} (written by "
            "benchmarks/accuracy_seeds.py --json)")


def _check_file_name(name):
    """A seed study is named by its file name alone: a folder part, '.' or '..' would read
    something else than a study (the results folder itself, a file outside it)."""
    if isinstance(name, str) and name and (name in (".", "..") or Path(name).name != name
                                           or "/" in name or os.sep in name):
        raise ValueError(f"name: {name!r} is a path; give the file name of a seed study in "
                         f"{results_folder()}, e.g. 'accuracy-seeds-h200.json'")


def _study_result(study, name, param="name", caller="this function"):
    """One named run of a seed study (the argument ``param``); a record of another kind, or an
    unknown name, is named."""
    _check_study(study, caller)
    if not isinstance(name, str):  # a list would fail as unhashable; JSON names are str
        example = next(iter(study["results"]), "text")
        raise TypeError(f"{param}: a run's name must be a str, e.g. {example!r}, got {name!r} "
                        f"({_a_kind(name)})")
    if name not in study["results"]:
        raise ValueError(f"{param}: no run {name!r} in this seed study; its runs are "
                         f"{', '.join(map(repr, study['results']))}")
    return study["results"][name]


def _check_study(study, caller):
    """A seed study as load_seed_study returns it; its file name, or a speed record, is named
    with what to call instead."""
    if _is_seed_study(study):
        return
    if isinstance(study, (str, os.PathLike)):
        got = (f"the file name {os.fspath(study)!r}: load it first, study = load_seed_study("
               f"{os.fspath(study)!r}), and pass study")
    elif isinstance(study, dict) and "runs" in study:
        got = "a speed benchmark's record (of speed.load_result: it has 'runs', not 'results')"
    else:
        got = f"{_a_kind(study)}, which is not one"
    raise TypeError(f"{caller} takes a seed study as load_seed_study() returns it (a dict with "
                    f"'results'), got {got}")


_STATS = ("mean", "std", "min", "max", "n")
_A_RUN_HOLDS = ("a seed study's run is a dict with 'seeds' (the seeds it was trained from, whole "
                "numbers), 'valid_acc' and 'test_acc' (one accuracy per seed; 'train_acc' too) "
                "and 'valid' and 'test' (their summary: a dict of 'mean', 'std', 'min', 'max' "
                "and 'n'; 'train' too), as benchmarks/accuracy_seeds.py writes it")


def _check_study_run(result, name, keys=(), row=None):
    """The run ``name`` of a seed study (as a records file holds it, which may be damaged) is a
    dict holding ``keys``, each of the kind benchmarks/accuracy_seeds.py writes: 'seeds' and
    '<split>_acc' lists of numbers, '<split>' a summary of them. What is missing or of another
    kind is named, with the run, the row (``row``, its label in a table) and what a run holds."""
    where = f"the seed study's run {name!r}" + ("" if row is None else f" (row {row!r})")

    def damaged(problem):
        raise ValueError(f"{where} is damaged: {problem}; {_A_RUN_HOLDS}. Load the record again "
                         "with load_seed_study(); if its file is damaged, restore it from git "
                         "(git checkout -- benchmarks/results/)")

    if not isinstance(result, dict):
        damaged(f"it is {_shown(result)} ({_a_kind(result)}), not a dict")
    for key in keys:
        if key not in result:
            split = key.removesuffix("_acc")
            measured = [s for s in _HELD_OUT if f"{s}_acc" in result and s in result]
            if (split in SPLITS and measured and f"{split}_acc" not in result
                    and split not in result):  # a run on all 60,000 images has no validation
                raise ValueError(f"{where} has no {split} accuracies ({key!r}): it was measured "
                                 f"on {' and '.join(map(repr, measured))} only; ask for that "
                                 "split, or leave this run out")
            if key in SPLITS and isinstance(result.get(f"{key}_acc"), list):
                raise ValueError(  # --study batch-norm-final keeps each seed's accuracy only
                    f"{where} holds its {key} accuracies ({key}_acc: one per seed) but no "
                    f"summary of them ({key!r}: their mean, std, min, max and n), which a "
                    "table shows: a record of benchmarks/accuracy_seeds.py --study "
                    "batch-norm-final keeps only the accuracies. "
                    + ("" if key not in _HELD_OUT else  # training accuracies are not compared
                       "Compare its runs with seed_study_pairs(study, reference, rows), or ")
                    + ("summarise" if key in _HELD_OUT else "Summarise")
                    + " them with "
                    f"recipes.summarize(study['results'][{name!r}][{key + '_acc'!r}])")
            damaged(f"it lacks {key!r}")
        value = result[key]
        if key in SPLITS:
            if not isinstance(value, dict):
                damaged(f"its {key!r} is {_shown(value)} ({_a_kind(value)}), not a dict "
                        f"of {', '.join(map(repr, _STATS))}")
            for stat in _STATS:
                if stat not in value:
                    damaged(f"its {key!r} lacks {stat!r}")
                number = value[stat]
                kind = numbers.Integral if stat == "n" else numbers.Real
                if isinstance(number, bool) or not isinstance(number, kind):
                    damaged(f"its {key!r}[{stat!r}] is {_shown(number)} (a "
                            f"{type(number).__name__}), not a "
                            f"{'whole number' if stat == 'n' else 'number'}")
            _check_summary_ranges(key, value, damaged)
        else:  # 'seeds', 'valid_acc', 'test_acc'
            kind, what = ((numbers.Integral, "seeds (whole numbers)") if key == "seeds"
                          else (numbers.Real, "accuracies (numbers)"))
            if not isinstance(value, list):
                damaged(f"its {key!r} is {_shown(value)} ({_a_kind(value)}), not a list "
                        f"of {what}")
            for item in value:
                if isinstance(item, bool) or not isinstance(item, kind):
                    damaged(f"its {key!r} holds {_shown(item)} ({_a_kind(item)}), but "
                            f"it must hold {what}")


def _check_summary_ranges(split, summary, damaged):
    """A summary of accuracies that cannot be one (a percentage beside fractions, a negative
    std, NaN, n=0) would be shown in a table without a word: ``damaged(problem)`` names it."""
    shown = ", ".join(f"{stat} {_shown(summary[stat], 24)}" for stat in ("mean", "min", "max"))
    if not all(_finite(summary[stat]) and 0 <= summary[stat] <= 1
               for stat in ("mean", "min", "max")):
        damaged(f"its {split!r} summary has {shown}, but accuracies are fractions in [0, 1] "
                "(0.85 for 85 %)")
    slack = 1e-9  # the mean of equal accuracies may differ from them in its last digit
    if not summary["min"] - slack <= summary["mean"] <= summary["max"] + slack:
        damaged(f"its {split!r} summary has {shown}, but a mean lies between min and max")
    if not (_finite(summary["std"]) and summary["std"] >= 0):
        damaged(f"its {split!r} summary has std {_shown(summary['std'], 24)}, but a standard "
                "deviation is a finite number of at least 0")
    if summary["n"] < 1:
        damaged(f"its {split!r} summary has n {summary['n']!r}, but it summarises at least one "
                "seed's accuracy")


def _check_rows(rows, study=None):
    if not isinstance(rows, dict):
        # the example names a run of this study where there is one (no study has a run 'text')
        example = (next(iter(study["results"]), None) if isinstance(study, dict)
                   and isinstance(study.get("results"), dict) else None)
        example = example or "LeNet-5 as in the text"
        raise TypeError(f"rows must be a dict {{label: run name}}, e.g. "
                        f"{{'the text': {example!r}}}, got {_a_kind(rows)}")
    if study is not None:
        if not rows:
            example = next(iter(study["results"]), "text")
            raise ValueError("rows is empty: name at least one run of the study, as {label: run "
                             f"name}}, e.g. {{'the text': {example!r}}}")
        for label, name in rows.items():
            _check_study_run(_study_result(study, name, "rows"), name, row=label)


# The splits a seed study's run holds accuracies of. The book chooses on validation accuracy and
# reports on the test set (_HELD_OUT); training accuracy is shown, never chosen on (it rewards
# memorising the training images), so seed_study_pairs, which says whether a change "replaces
# the setting", refuses it.
SPLITS = ("valid", "test", "train")
_HELD_OUT = ("valid", "test")
_SPLITS_NAMED = "'valid' or 'test' (or 'train', for training accuracy)"


def _check_splits(splits):
    if (isinstance(splits, (str, bytes)) or not isinstance(splits, (tuple, list))
            or not splits or any(not isinstance(split, str) or split not in SPLITS
                                 for split in splits)):
        raise (ValueError if isinstance(splits, (tuple, list)) else TypeError)(
            f"splits must be a list of the splits 'valid' and 'test' (or 'train', for training "
            f"accuracy), e.g. ('valid',), got {splits!r}")


def _check_split(split, caller, splits=SPLITS, named=_SPLITS_NAMED):
    """One of ``splits`` of the study (``named`` in words), in the words of ``caller``."""
    if not isinstance(split, str) or split not in splits:
        raise (ValueError if isinstance(split, str) else TypeError)(
            f"{caller}: split must be {named}, got {split!r}")


def _pair_keys(split):
    """What a run needs to pair its accuracies on ``split`` with its seeds (nothing to check for
    a split that is not one: the split is named then)."""
    return ("seeds", f"{split}_acc") if isinstance(split, str) and split in SPLITS else ()


def accuracy_by_seed(study, name, split="valid"):
    """{seed: accuracy} of one named run of the seed study on "valid" or "test" (or "train")."""
    result = _study_result(study, name, caller="accuracy_by_seed")
    _check_split(split, "accuracy_by_seed")
    _check_study_run(result, name, _pair_keys(split))
    seeds, accuracies = result.get("seeds"), result[f"{split}_acc"]
    _check_pairs(name, split, seeds, accuracies)
    return dict(zip(seeds, accuracies))


def _check_pairs(name, split, seeds, accuracies):
    """One accuracy per seed, each seed once: zip would drop the seeds past the shorter list,
    and a dict would keep only the last of a repeated seed, pairing fewer seeds without a word."""
    if not isinstance(seeds, list) or not isinstance(accuracies, list):
        problem = "its seeds and accuracies are not lists"
    elif len(seeds) != len(accuracies):
        problem = f"it has {len(seeds)} seeds but {len(accuracies)} {split} accuracies"
    elif len(set(map(repr, seeds))) != len(seeds):
        problem = "a seed appears twice in it"
    else:
        return
    raise ValueError(f"the seed study's run {name!r} is damaged: {problem}. Load the record "
                     "again with load_seed_study(); if its file is damaged, restore it from git "
                     "(git checkout -- benchmarks/results/)")


def seed_study_table(study, rows, splits=("valid",)):
    """Accuracy over seeds of the named runs, as a DataFrame: rows is {label: result name}."""
    import pandas as pd
    _check_study(study, "seed_study_table")
    _check_rows(rows, study)
    _check_splits(splits)
    for label, name in rows.items():  # every row before the first is made
        _check_study_run(_study_result(study, name), name, splits, row=label)
    table = []
    for label, name in rows.items():
        result = _study_result(study, name)
        row = {"recipe": label, "n": result[splits[0]]["n"]}
        for split in splits:
            s = result[split]
            row[f"{split} mean ± std"] = f"{s['mean']:.3f} ± {s['std']:.3f}"
            row[f"{split} min"], row[f"{split} max"] = f"{s['min']:.3f}", f"{s['max']:.3f}"
        table.append(row)
    return pd.DataFrame(table).set_index("recipe").rename_axis(_recipe_header(study))


def _recipe_header(study):
    """The tables' index name: "recipe", or for a dry run of accuracy_seeds (--subset or
    --epochs) a note that says so, as its accuracies keep the full study's names."""
    options = _dry_run_options(study)
    if not study.get("dry_run") and not options:
        return "recipe"  # the committed studies: shown as they always were
    return "recipe (DRY RUN" + "".join(f", {option}" for option in options) + ")"


def _dry_run_options(study):
    """The dry-run options a seed study was made with, as written: ['--subset 60', '--epochs 1']
    (a value that is not a whole number is named without it)."""
    options = []
    for key, option in (("subset", "--subset"), ("epochs_override", "--epochs")):
        value = study.get(key)
        if value:  # None or 0: each recipe's own (the committed studies)
            whole = isinstance(value, int) and not isinstance(value, bool)
            options.append(f"{option} {value}" if whole else option)
    return options


def _seeds_shown(seeds):
    """A run's seeds in a few words: '0 to 19' for a range, else the first ones."""
    seeds = sorted(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"seeds {seeds[0]} to {seeds[-1]}"
    shown = ", ".join(map(str, seeds[:8])) + (", ..." if len(seeds) > 8 else "")
    return f"seeds {shown}" if seeds else "no seeds"


def _check_shared_seeds(study, reference, rows, split):
    """Each row's run and the reference share at least 2 seeds (recipes.paired_test pairs the
    accuracies of a seed both were trained from): runs of other seeds are named, with both seeds.
    The split was checked by seed_study_pairs."""
    if not _pair_keys(split):
        return
    _check_study_run(_study_result(study, reference, "reference"), reference, _pair_keys(split))
    theirs = study["results"][reference].get("seeds", [])
    for label, name in rows.items():
        mine = study["results"][name].get("seeds", [])
        shared = sorted(set(mine) & set(theirs))
        if len(shared) >= 2:
            continue
        how = ("share no seeds" if not shared
               else f"share only one seed ({shared[0]}), and a paired test needs at least 2")
        raise ValueError(f"seed_study_pairs: the runs {name!r} (row {label!r}) and {reference!r} "
                         f"(the reference) {how} ({name!r}: {_seeds_shown(mine)}; {reference!r}: "
                         f"{_seeds_shown(theirs)}), so their accuracies cannot be paired seed by "
                         "seed; compare runs trained from the same seeds (give another reference, "
                         "or leave that row out)")


def seed_study_pairs(study, reference, rows, split="valid"):
    """Each named run against the reference run, paired on the seeds both were trained from
    (``recipes.paired_test``, one-sided, at ``recipes.ALPHA``), as a DataFrame."""
    import pandas as pd

    from lenet_book import recipes
    _check_study(study, "seed_study_pairs")
    _check_rows(rows)
    _study_result(study, reference, "reference")
    if isinstance(split, str) and split == "train":
        raise ValueError(f"seed_study_pairs: split={split!r} pairs training accuracies, but its "
                         "table says whether a change replaces the setting, and the book "
                         "chooses on validation accuracy, never on training accuracy (it rewards "
                         "memorising the training images): give split='valid' (or 'test', to "
                         "report on the test set); accuracy_by_seed(study, name, 'train') gives "
                         "the training accuracies themselves")
    _check_split(split, "seed_study_pairs", _HELD_OUT, "'valid' or 'test'")
    _check_rows(rows, study)
    for label, name in rows.items():  # the row named, before any test
        _check_study_run(_study_result(study, name), name, _pair_keys(split), row=label)
    _check_shared_seeds(study, reference, rows, split)
    table = []
    reference_by_seed = accuracy_by_seed(study, reference, split)
    for label, name in rows.items():  # each pair: a seed both runs were trained from
        after = {seed: acc for seed, acc in accuracy_by_seed(study, name, split).items()
                 if seed in reference_by_seed}
        before = {seed: acc for seed, acc in reference_by_seed.items() if seed in after}
        t = recipes.paired_test(before, after)
        table.append({"recipe": label, "pairs": t["n"], "mean gain": f"{t['gain']:+.4f}",
                      "seeds better": f"{t['wins']}/{t['n']}", "p (paired t)": f"{t['p']:.2g}",
                      "replaces the setting": t["p"] < recipes.ALPHA})
    return pd.DataFrame(table).set_index("recipe").rename_axis(_recipe_header(study))
