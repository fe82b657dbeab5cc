"""Chapter 4 finds the committed benchmark results in a checkout and in an installed copy (Colab)."""

import pytest

import lenet_book.results as results


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
