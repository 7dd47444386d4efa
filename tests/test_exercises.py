"""Exercises: one layout in every chapter, opaque one-line checks, and the three-way proof of each.

The proof itself (placeholder → no answer yet, solution → correct, wrong answer → not
yet) runs inside nbval's one execution of each notebook, under TLCOURSE_CHECKS=strict
(``tlcourse.exercises.core.prove``); these tests hold the notebooks to the layout that
makes it possible, and test the proof machinery on exercises made up for the purpose.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import nbformat
import pytest
import torch

import tlcourse as tl
from tlcourse.exercises import core
from tlcourse.exercises.notebooks import EXERCISE_TAG, SOLUTION_TAG, check_call, code_blocks, solution_of

NOTEBOOKS = sorted(Path(__file__).resolve().parents[1].glob("notebooks/[0-9][0-9]_*.ipynb"))
STARS = {1: "★", 2: "★★", 3: "★★★"}


def _tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def _chapter(path: Path) -> int:
    return int(path.name[:2])


def _exercises(chapter: int) -> list[core.Exercise]:
    return sorted((e for e in tl.EXERCISES.values() if e.chapter == chapter), key=lambda e: int(e.id.split(".")[1]))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_check_cell_is_one_call_naming_the_exercise_and_the_variable(path: Path) -> None:
    """A check cell reveals nothing: no reference computation, no hint, only tl.check("N.M", answer)."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and re.search(r"\bcheck(_\w+)?\(", cell.source):
            assert check_call(cell.source), f"{path.name}, cell {cell.id}: a check cell is exactly " \
                                            f"tl.check(\"N.M\", answer), not:\n{cell.source}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_exercise_has_prompt_answer_solution_and_check_in_that_order(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    chapter = _chapter(path)
    exercises = _exercises(chapter)
    assert exercises, f"chapter {chapter} registers no exercises (tlcourse/exercises/chapter{chapter:02d}.py)"
    cells = nb.cells
    for ex in exercises:
        label = ex.label
        prompts = [i for i, c in enumerate(cells) if c.cell_type == "markdown"
                   and c.source.startswith(f":::{{exercise}} {ex.id} · ")]
        solutions = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and solution_of(c.source) == ex.id]
        checks = [i for i, c in enumerate(cells) if c.cell_type == "code" and check_call(c.source) == (ex.id, ex.answer)]
        assert len(prompts) == len(solutions) == len(checks) == 1, \
            f"{path.name}: exercise {ex.id} needs one prompt, one solution, one check of {ex.answer}"
        (p,), (s,), (k,) = prompts, solutions, checks
        assert p < s < k, f"{path.name}: exercise {ex.id}: prompt, then answer cell, then solution, then check"
        prompt = cells[p]
        assert EXERCISE_TAG in _tags(prompt) and f":label: {label}\n" in prompt.source
        title = prompt.source.splitlines()[0]
        assert f" · {STARS[ex.stars]} · {core.KINDS[ex.kind]}: " in title, f"{path.name}: {title}"
        answer_cells = [c for c in cells[p + 1:s] if c.cell_type == "code"]
        assert answer_cells and re.search(rf"^{ex.answer} = None\b", answer_cells[0].source, re.M), \
            f"{path.name}: exercise {ex.id}'s first cell after the prompt sets {ex.answer} = None"
        solution = cells[s]
        assert SOLUTION_TAG in _tags(solution) and solution.metadata.get("jupyter", {}).get("source_hidden"), \
            f"{path.name}: the solution of {ex.id} is tagged solution and collapsed in JupyterLab"
        assert ":class: dropdown" in solution.source and re.search(rf"^{ex.answer} = ", code_blocks(solution.source), re.M)
    registered = {e.id for e in exercises}
    in_notebook = {m[0] for c in cells if c.cell_type == "code" and (m := check_call(c.source))}
    assert in_notebook == registered, f"{path.name}: checks of {sorted(in_notebook ^ registered)} do not match"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_code_cell_holds_a_solution(path: Path) -> None:
    """Solutions are markdown: Run All cannot run one and overwrite the learner's answer."""
    nb = nbformat.read(path, as_version=4)
    assert not [c.id for c in nb.cells if c.cell_type == "code" and SOLUTION_TAG in _tags(c)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_chapter_has_three_to_five_exercises_with_a_prediction_and_a_change(path: Path) -> None:
    exercises = _exercises(_chapter(path))
    kinds = [e.kind for e in exercises]
    assert 3 <= len(exercises) <= 5, f"{path.name}: {len(exercises)} exercises"
    assert "predict" in kinds and "change" in kinds, f"{path.name}: kinds {kinds}"
    assert [e.id for e in exercises] == [f"{_chapter(path)}.{i}" for i in range(1, len(exercises) + 1)]


def _anchor(heading: str) -> str:
    from myst_parser.mdit_to_docutils.base import default_slugify  # the website's own anchors

    return default_slugify(heading)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_chapter_ends_with_a_summary_whose_points_link_to_their_sections(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    markdown = [c.source for c in nb.cells if c.cell_type == "markdown"]
    headings = [h for m in markdown for h in re.findall(r"^#{2,3} (.+)$", m, re.M)]
    assert headings and headings[-1] == "Summary", f"{path.name}: the last section is {headings[-1:]}"
    summary = next(m for m in reversed(markdown) if m.startswith("## Summary"))
    points = re.findall(r"^- (.+?)(?=^- |^\n|\Z)", summary + "\n", re.M | re.S)
    assert 3 <= len(points) <= 6, f"{path.name}: {len(points)} takeaways"
    anchors = {_anchor(h) for h in headings}
    for point in points:
        links = re.findall(r"\]\(#([\w\-]+)\)", point)
        assert links, f"{path.name}: this takeaway points to no section: {point[:80]}"
        assert all(a in anchors for a in links), f"{path.name}: {links} not among {sorted(anchors)}"


# --- the machinery, on exercises made up here ----------------------------------------------------

@pytest.fixture
def made_up(monkeypatch: pytest.MonkeyPatch) -> core.Exercise:
    monkeypatch.delenv(tl.CHECKS_ENV, raising=False)

    @core.exercise("98.1", answer="total", stars=1, kind="compute", mistake="total = sum(numbers[1:])")
    def _(answer, ns):
        return tl.same(answer, sum(core.need(ns, "numbers")), hint="Add every number.")

    yield tl.EXERCISES["98.1"]
    del tl.EXERCISES["98.1"]


def test_check_judges_against_the_callers_own_objects(made_up: core.Exercise) -> None:
    ns = {"numbers": [1, 2, 3]}
    assert core.judge_answer(made_up, None, ns).passed is None
    assert core.judge_answer(made_up, 6, ns).passed is True
    wrong = core.judge_answer(made_up, 5, ns)
    assert wrong.passed is False and wrong.message == "Add every number." and "6" not in wrong.message
    assert "not defined: run the cells above" in core.judge_answer(made_up, 6, {}).message
    assert "Correct" not in repr(core.judge_answer(made_up, None, ns))


def test_check_reads_the_namespace_it_is_called_from(made_up: core.Exercise) -> None:
    ns = {"tl": tl, "numbers": [4, 5]}
    exec('result = tl.check("98.1", 9)', ns)
    assert ns["result"].passed is True


def test_the_proof_needs_all_three_outcomes(made_up: core.Exercise) -> None:
    ns = {"numbers": [1, 2, 3]}
    unanswered = core.judge_answer(made_up, None, ns)
    core.prove(made_up, unanswered, ns, "total = sum(numbers)")  # all three hold
    with pytest.raises(AssertionError, match="untouched notebook must show 'No answer yet'"):
        core.prove(made_up, core.judge_answer(made_up, 6, ns), ns, "total = sum(numbers)")
    with pytest.raises(AssertionError, match="solution fails its check"):
        core.prove(made_up, unanswered, ns, "total = max(numbers)")
    with pytest.raises(AssertionError, match="does not assign total"):
        core.prove(made_up, unanswered, ns, "answer = sum(numbers)")
    lax = core.Exercise("98.2", "total", 1, "compute", made_up.judge, "total = sum(numbers)")
    with pytest.raises(AssertionError, match="wrong answer .* is not caught"):
        core.prove(lax, unanswered, ns, "total = sum(numbers)")


def test_running_a_solution_rebinds_nothing_and_leaves_the_random_state(made_up: core.Exercise) -> None:
    ns = {"numbers": [1, 2, 3], "torch": torch, "random": random}
    torch.manual_seed(0)
    before = torch.get_rng_state()
    value = core.run_answer("numbers = [0]\ntotal = torch.rand(1).item() + random.random()", ns, "total", what="s")
    assert isinstance(value, float) and ns["numbers"] == [1, 2, 3] and "total" not in ns
    assert torch.equal(torch.get_rng_state(), before)


def test_strict_mode_proves_the_exercise_when_the_check_runs(made_up: core.Exercise, monkeypatch) -> None:
    monkeypatch.setenv(tl.CHECKS_ENV, "strict")
    monkeypatch.setattr("tlcourse.exercises.notebooks.solution_code", lambda number: "total = max(numbers)")
    with pytest.raises(AssertionError, match="solution fails its check"):
        exec('tl.check("98.1", None)', {"tl": tl, "numbers": [1, 2, 3]})
    monkeypatch.setattr("tlcourse.exercises.notebooks.solution_code", lambda number: "total = sum(numbers)")
    exec('tl.check("98.1", None)', {"tl": tl, "numbers": [1, 2, 3]})


def test_a_typo_in_the_exercise_number_or_the_mode_raises(made_up: core.Exercise, monkeypatch) -> None:
    with pytest.raises(tl.UnknownNameError, match="unknown exercise '98.7'"):
        tl.check("98.7", 1)
    monkeypatch.setenv(tl.CHECKS_ENV, "strcit")
    with pytest.raises(ValueError, match="Did you mean 'strict'"):
        tl.check("98.1", 1)
    with pytest.raises(tl.UnknownNameError, match="kind of exercise"):
        core.exercise("98.3", answer="x", stars=1, kind="guess", mistake="x = 0")


def test_every_registered_exercise_has_a_wrong_answer_and_a_solution_in_its_notebook() -> None:
    from tlcourse.exercises.notebooks import solution_code

    for ex in tl.EXERCISES.values():
        assert re.search(rf"^{ex.answer} = ", ex.mistake, re.M), f"{ex.id}: the wrong answer assigns {ex.answer}"
        assert ex.mistake.strip() not in solution_code(ex.id), f"{ex.id}: the wrong answer is the solution"


# --- after nbval's run of the notebooks, in the same session -------------------------------------

def test_every_exercise_was_proved_three_ways_in_the_notebooks_run(nbval_session: dict) -> None:
    """Each check cell's output says, in its metadata, that strict mode proved its exercise (core.prove)."""
    shown: dict[str, dict] = {}
    for notebook, cells in nbval_session.items():
        for outputs in cells.values():
            for o in outputs:
                meta = o.get("metadata", {}).get("tlcourse")
                if meta:
                    shown[meta["exercise"]] = meta
    ran = {e.id for e in tl.EXERCISES.values() if tl.exercises.notebooks.chapter_notebook(e.chapter) in nbval_session}
    assert ran, "no notebook with exercises ran in this session"
    assert sorted(shown) == sorted(ran), f"checks that showed no result: {sorted(ran - set(shown))}"
    assert all(m["proved"] and m["status"] == "no answer yet" for m in shown.values()), shown


def test_the_authoring_tool_writes_the_layout_these_tests_hold_notebooks_to() -> None:
    from tools.exercise_cells import cells

    prompt, answer, ran, solution, check = cells(
        "3.9", stars=2, kind="predict", title="t", prompt="Guess.", answer="guess", placeholder="guess = None",
        solution="guess = 1", run=["print(1)"])
    assert prompt.source.startswith(":::{exercise} 3.9 · ★★ · Predict, then run: t\n:label: ex-3-9\n")
    assert EXERCISE_TAG in _tags(prompt) and answer.source == "guess = None" and ran.source == "print(1)"
    assert solution_of(solution.source) == "3.9" and code_blocks(solution.source) == "guess = 1\n"
    assert SOLUTION_TAG in _tags(solution) and solution.metadata["jupyter"]["source_hidden"]
    assert check_call(check.source) == ("3.9", "guess")
