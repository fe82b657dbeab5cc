"""Specification of the exercises: every exercise has a hint and a worked, executed solution.

A chapter's last cell, "## Exercises", labels each exercise with an anchor and a bold number,
``<a id="exercise-3-2"></a>**Exercise 3.2.**``, then folds a hint under it,
``<details class="hint"><summary>Hint</summary>`` ... ``</details>``, and links to its solution,
``[Solution 3.2](solutions/03_training.ipynb#solution-3-2)``. The solutions notebook of a chapter,
``notebooks/solutions/03_training.ipynb``, has one section ``## Solution 3.2`` per exercise, in
order, each linking back to its exercise and holding executed code. Plain Markdown and HTML, so
that Jupyter, Colab and the site all show the same (CONTRIBUTING.md, "Exercises and solutions").
nbval replays the solutions like the chapters; tests/test_book.py checks them as it checks chapters.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from lenet_book.book import chapters, solutions

REPO = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((REPO / "_config.yml").read_text())
CHAPTERS = chapters()
COLAB = "https://colab.research.google.com/github/{repo}/blob/{branch}/notebooks/solutions/{name}"

EXERCISE = re.compile(r'^<a id="exercise-(\d+)-(\d+)"></a>\*\*Exercise (\d+)\.(\d+)\.\*\* ', re.M)
HINT = re.compile(r'<details class="hint">\s*<summary>Hint</summary>\s*\n(.*?)\n\s*</details>', re.S)
SOLUTION_HEADING = re.compile(r"^## Solution (\d+)\.(\d+)$", re.M)


@dataclass
class Exercise:
    number: str  # "3.2"
    text: str  # from its label to the next exercise's


def number_of(chapter: Path) -> int:
    return int(chapter.name[:2])


def markdown(cell: dict) -> str:
    return "".join(cell["source"])


def exercises(chapter_nb: dict) -> list[Exercise]:
    """The exercises of a chapter's last markdown cell, as labelled there."""
    cells = [markdown(c) for c in chapter_nb["cells"] if c["cell_type"] == "markdown"]
    section = cells[-1].split("## Exercises", 1)[-1]
    starts = list(EXERCISE.finditer(section))
    return [Exercise(f"{m.group(3)}.{m.group(4)}", section[m.start():(starts[i + 1].start() if i + 1 < len(starts)
                                                                      else len(section))])
            for i, m in enumerate(starts)]


def exercise_problems(chapter: Path, chapter_nb: dict) -> list[str]:
    """What an exercise section lacks: a label, a hint, a solution link. Empty when complete."""
    n = number_of(chapter)
    found = exercises(chapter_nb)
    problems = []
    if not found:
        problems.append("no labelled exercise (<a id=\"exercise-N-k\"></a>**Exercise N.k.**)")
    if [e.number for e in found] != [f"{n}.{k}" for k in range(1, len(found) + 1)]:
        problems.append(f"exercises numbered {[e.number for e in found]}, not {n}.1, {n}.2, ...")
    for match in EXERCISE.finditer("\n".join(e.text for e in found)):
        if match.group(1, 2) != match.group(3, 4):
            problems.append(f"anchor exercise-{match.group(1)}-{match.group(2)} labels Exercise "
                            f"{match.group(3)}.{match.group(4)}")
    section = [markdown(c) for c in chapter_nb["cells"] if c["cell_type"] == "markdown"][-1]
    if re.search(r"^\d+\. ", section.split("## Exercises", 1)[-1], re.M):
        problems.append("a numbered list item in the exercises: label every exercise instead")
    for exercise in found:
        hint = HINT.search(exercise.text)
        if not hint or len(hint.group(1).split()) < 5:
            problems.append(f"Exercise {exercise.number}: no hint")
        slug = exercise.number.replace(".", "-")
        link = f"[Solution {exercise.number}](solutions/{chapter.name}#solution-{slug})"
        if link not in exercise.text:
            problems.append(f"Exercise {exercise.number}: no link {link}")
    return problems


def solution_sections(solutions_nb: dict) -> dict[str, list[dict]]:
    """Solution number -> the cells of its section, from its heading to the next one."""
    sections: dict[str, list[dict]] = {}
    current = None
    for cell in solutions_nb["cells"]:
        heading = SOLUTION_HEADING.search(markdown(cell)) if cell["cell_type"] == "markdown" else None
        if heading:
            current = f"{heading.group(1)}.{heading.group(2)}"
            sections[current] = []
        if current:
            sections[current].append(cell)
    return sections


def solution_problems(chapter: Path, chapter_nb: dict, solutions_nb: dict) -> list[str]:
    """What the solutions notebook lacks: a section per exercise, in order, each linking back to
    its exercise and holding a code cell that ran and printed or drew something."""
    wanted = [e.number for e in exercises(chapter_nb)]
    sections = solution_sections(solutions_nb)
    problems = [] if list(sections) == wanted else [f"solutions {list(sections)}, exercises {wanted}"]
    for number, cells in sections.items():
        slug = number.replace(".", "-")
        if f"(../{chapter.name}#exercise-{slug})" not in markdown(cells[0]):
            problems.append(f"Solution {number}: its heading cell does not link to ../{chapter.name}#exercise-{slug}")
        ran = [c for c in cells if c["cell_type"] == "code" and c.get("outputs")]
        if not ran:
            problems.append(f"Solution {number}: no executed code cell with an output")
    return problems


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_every_chapter_has_a_solutions_notebook_named_like_it_in_the_toc():
    assert [p.name for p in solutions()] == [p.name for p in CHAPTERS], "one solutions notebook per chapter, in order"
    on_disk = sorted((REPO / "notebooks" / "solutions").glob("*.ipynb"))
    assert solutions() == on_disk, "every notebook in notebooks/solutions/ is listed in _toc.yml"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_every_exercise_has_a_number_a_hint_and_a_solution_link(chapter):
    problems = exercise_problems(chapter, load(chapter))
    assert not problems, f"{chapter.name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_every_exercise_has_an_executed_solution_that_links_back(chapter):
    problems = solution_problems(chapter, load(chapter), load(REPO / "notebooks" / "solutions" / chapter.name))
    assert not problems, f"notebooks/solutions/{chapter.name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_the_exercises_open_the_solutions_in_colab_in_one_click(chapter):
    """Relative links do not work in Colab: the exercise section links to the solutions there."""
    owner_repo = CONFIG["repository"]["url"].removeprefix("https://github.com/")
    url = COLAB.format(repo=owner_repo, branch=CONFIG["repository"]["branch"], name=chapter.name)
    section = [markdown(c) for c in load(chapter)["cells"] if c["cell_type"] == "markdown"][-1]
    assert f"]({url})" in section, f"{chapter.name}: no link to {url}"


def test_book_counts_at_least_one_exercise_per_chapter():
    counts = {chapter.name: len(exercises(load(chapter))) for chapter in CHAPTERS}
    assert all(counts.values()), counts


# --- The checks can fail: a tiny chapter and its solutions, broken one way at a time ------------

GOOD_EXERCISES = """## Exercises

<a id="exercise-3-1"></a>**Exercise 3.1.** Train it.

<details class="hint">
<summary>Hint</summary>

Call `train` with three seeds and compare.

</details>

[Solution 3.1](solutions/03_training.ipynb#solution-3-1)

<a id="exercise-3-2"></a>**Exercise 3.2.** Plot it.

<details class="hint">
<summary>Hint</summary>

Use `d2l.plt` on the history you already have.

</details>

[Solution 3.2](solutions/03_training.ipynb#solution-3-2)
"""


def tiny(markdown_cells: list[str], code_output: bool = True) -> dict:
    cells = []
    for text in markdown_cells:
        cells.append({"cell_type": "markdown", "metadata": {}, "source": text})
        cells.append({"cell_type": "code", "metadata": {}, "source": "print(1)", "execution_count": 1,
                      "outputs": [{"output_type": "stream", "name": "stdout", "text": "1\n"}] if code_output else []})
    return {"cells": cells}


CHAPTER = REPO / "notebooks" / "03_training.ipynb"
GOOD_SOLUTIONS = ["# Solutions", "## Solution 3.1\n\n[Exercise 3.1](../03_training.ipynb#exercise-3-1) asks ...",
                  "## Solution 3.2\n\n[Exercise 3.2](../03_training.ipynb#exercise-3-2) asks ..."]


def test_a_complete_tiny_chapter_passes():
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": GOOD_EXERCISES}]}
    assert exercise_problems(CHAPTER, nb) == []
    assert solution_problems(CHAPTER, nb, tiny(GOOD_SOLUTIONS)) == []


@pytest.mark.parametrize("broken, expected", [
    (GOOD_EXERCISES.replace("Use `d2l.plt` on the history you already have.", ""), "Exercise 3.2: no hint"),
    (GOOD_EXERCISES.replace("[Solution 3.1](solutions/03_training.ipynb#solution-3-1)", ""),
     "Exercise 3.1: no link"),
    (GOOD_EXERCISES.replace("**Exercise 3.2.**", "**Exercise 3.3.**"), "numbered"),
    (GOOD_EXERCISES.replace('<a id="exercise-3-2"></a>**Exercise 3.2.** Plot it.', "2. Plot it."), "numbered list"),
])
def test_an_exercise_without_a_hint_or_solution_is_named(broken, expected):
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": broken}]}
    assert any(expected in problem for problem in exercise_problems(CHAPTER, nb))


@pytest.mark.parametrize("cells, executed, expected", [
    (GOOD_SOLUTIONS[:2], True, "solutions ['3.1'], exercises ['3.1', '3.2']"),
    ([GOOD_SOLUTIONS[0], GOOD_SOLUTIONS[2], GOOD_SOLUTIONS[1]], True, "solutions ['3.2', '3.1']"),
    ([GOOD_SOLUTIONS[0], GOOD_SOLUTIONS[1], "## Solution 3.2\n\nNo link back."], True, "does not link"),
    (GOOD_SOLUTIONS, False, "no executed code cell"),
])
def test_a_missing_unordered_or_unexecuted_solution_is_named(cells, executed, expected):
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": GOOD_EXERCISES}]}
    assert any(expected in problem for problem in solution_problems(CHAPTER, nb, tiny(cells, executed)))
