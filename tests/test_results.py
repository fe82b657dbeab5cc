"""Chapter 4 finds the committed benchmark results in a checkout and in an installed copy (Colab),
and the benchmark sums up its runs as chapter 4 shows them."""

import pytest

import lenet_book.results as results
from lenet_book.results import best_runs, repeat_summary


def test_in_a_checkout_it_is_benchmarks_results():
    folder = results.results_folder()
    assert folder == results.PACKAGE.parent / "benchmarks" / "results"
    assert (folder / "cpu.json").is_file()


def test_an_installed_copy_uses_its_packaged_results(tmp_path, monkeypatch):
    (tmp_path / "benchmark_results").mkdir()
    monkeypatch.setattr(results, "PACKAGE", tmp_path)
    assert results.results_folder() == tmp_path / "benchmark_results"


def test_without_either_it_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "PACKAGE", tmp_path / "lenet_book")
    with pytest.raises(FileNotFoundError, match="Install lenet_book from the book's repository"):
        results.results_folder()


# --- how the speed benchmark sums up its runs (benchmarks/train_speed.py) -----------------------

def run(variant, repeat, speed):
    return {"variant": variant, "repeat": repeat, "examples_per_sec": speed}


def test_best_runs_keeps_the_fastest_run_of_each_variant_and_its_ratio_to_the_text():
    runs = [run("text", 0, 100.0), run("fast", 0, 250.0), run("text", 1, 125.0), run("fast", 1, 200.0)]
    best = best_runs(runs)
    assert best["text"]["examples_per_sec"] == 125.0 and best["fast"]["examples_per_sec"] == 250.0
    assert best["fast"]["ratio_to_text"] == pytest.approx(2.0) and best["text"]["ratio_to_text"] == 1.0
    assert "ratio_to_text" not in runs[1], "the runs themselves are left as they were"


def test_best_runs_leaves_out_failed_runs_and_the_ratio_without_a_text_run():
    runs = [run("fast", 0, 250.0), {"variant": "fused", "repeat": 0, "error": "RuntimeError: no compiler"}]
    best = best_runs(runs)
    assert list(best) == ["fast"] and "ratio_to_text" not in best["fast"]


def test_repeat_summary_takes_the_ratio_repeat_by_repeat():
    # the machine is twice as busy in repeat 1: both sides slow down, the ratio stays 2 and 3
    runs = [run("text", 0, 100.0), run("fast", 0, 200.0), run("text", 1, 50.0), run("fast", 1, 150.0)]
    summary = repeat_summary(runs)
    ratio = summary["fast"]["ratio_to_text"]
    assert (ratio["mean"], ratio["median"], ratio["min"], ratio["max"], ratio["n"]) == (2.5, 2.5, 2.0, 3.0, 2)
    assert ratio["std"] == pytest.approx(0.5 ** 0.5)
    speed = summary["fast"]["examples_per_sec"]
    assert (speed["mean"], speed["n"]) == (175.0, 2) and speed["std"] == pytest.approx(25 * 2 ** 0.5)


def test_repeat_summary_has_no_ratio_for_a_repeat_whose_text_run_failed():
    runs = [{"variant": "text", "repeat": 0, "error": "killed"}, run("fast", 0, 200.0),
            run("text", 1, 100.0), run("fast", 1, 300.0)]
    summary = repeat_summary(runs)
    assert summary["fast"]["ratio_to_text"]["n"] == 1 and summary["fast"]["ratio_to_text"]["mean"] == 3.0
    assert summary["fast"]["examples_per_sec"]["n"] == 2
    assert repeat_summary([run("fast", 0, 200.0)])["fast"].keys() == {"examples_per_sec"}


# --- how chapter 4 shows them (lenet_book.speed) ------------------------------------------------

def timed(variant, repeat, speed, **extra):
    return {"variant": variant, "description": variant, "repeat": repeat, "examples_per_sec": speed,
            "train_seconds": 600000 / speed, "test_acc": 0.8, **extra}


def test_paired_table_calls_a_change_faster_only_when_every_repeat_agrees():
    from lenet_book.speed import paired_table

    runs = [timed("fast", 0, 100.0), timed("a", 0, 120.0), timed("b", 0, 90.0), timed("c", 0, 110.0),
            timed("fast", 1, 50.0), timed("a", 1, 55.0), timed("b", 1, 45.0), timed("c", 1, 45.0)]
    table = paired_table({"runs": runs}, ["a", "b", "c"])
    assert list(table["in every repeat"]) == ["faster", "slower", "no"]
    assert list(table.loc["a", ["repeat 1", "repeat 2"]]) == ["1.20", "1.10"]
    one_run = paired_table({"runs": runs[:4]}, ["a"])
    assert one_run.loc["a", "in every repeat"] == "one run: no verdict"


def test_benchmark_table_shows_compile_seconds_and_flags_records_that_timed_them_inside():
    from lenet_book.speed import benchmark_table

    new = [timed("text", 0, 100.0, setup_seconds=0.0), timed("fast-compile", 0, 300.0, setup_seconds=20.0),
           timed("text", 1, 50.0, setup_seconds=0.0), timed("fast-compile", 1, 200.0, setup_seconds=22.0)]
    table = benchmark_table({"runs": new})
    assert table.loc["fast-compile", "compile s"] == "20.0, then 22.0"
    assert table.loc["fast-compile", "× text: median (min–max)"] == "3.50 (3.00–4.00)"
    old = [timed("text", 0, 100.0), timed("fast-compile", 0, 40.0)]  # made before setup_seconds
    table = benchmark_table({"runs": old})
    assert table.loc["fast-compile", "compile s"] == "inside train s"
    assert table.loc["text", "compile s"] == "0.0"
