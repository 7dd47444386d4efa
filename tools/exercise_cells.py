"""Write an exercise's cells in the course's one layout (see tlcourse/exercises/notebooks.py).

Used when authoring a chapter: ``cells(...)`` returns the prompt, answer, optional "run"
cells, solution and check cells, which a script splices into the notebook.

    python - <<'PY'
    from tools.exercise_cells import cells, splice
    splice("notebooks/03_source_model.ipynb", after_id="c25", new=cells(...))
    PY
"""

from __future__ import annotations

import nbformat

from tlcourse.exercises.core import KINDS, exercise_label

STARS = {1: "★", 2: "★★", 3: "★★★"}


def cells(number: str, *, stars: int, kind: str, title: str, prompt: str, answer: str, placeholder: str,
          solution: str, explanation: str = "", run: list[str] = ()) -> list[nbformat.NotebookNode]:
    """The cells of exercise ``number``; ``placeholder`` is the answer cell's code (it sets ``answer = None``)."""
    label = exercise_label(number)
    head = f":::{{exercise}} {number} · {STARS[stars]} · {KINDS[kind]}: {title}\n:label: {label}\n:nonumber:\n\n"
    out = [nbformat.v4.new_markdown_cell(head + prompt.strip() + "\n:::", metadata={"tags": ["exercise"]})]
    out.append(nbformat.v4.new_code_cell(placeholder.strip()))
    out += [nbformat.v4.new_code_cell(code.strip()) for code in run]
    body = f":::{{solution}} {label}\n:class: dropdown\n\n```python\n{solution.strip()}\n```\n"
    body += (f"\n{explanation.strip()}\n" if explanation else "") + ":::"
    out.append(nbformat.v4.new_markdown_cell(body, metadata={"tags": ["solution"], "jupyter": {"source_hidden": True}}))
    out.append(nbformat.v4.new_code_cell(f'tl.check("{number}", {answer})'))
    return out


def replace_cells(path: str, first_id: str, last_id: str, new: list[nbformat.NotebookNode], *, prefix: str) -> None:
    """Replace the cells from ``first_id`` to ``last_id`` (inclusive) by ``new``, with ids ``prefix``-0, -1, ..."""
    nb = nbformat.read(path, as_version=4)
    ids = [c.id for c in nb.cells]
    i, j = ids.index(first_id), ids.index(last_id)
    for k, cell in enumerate(new):
        cell.id = f"{prefix}-{k}"
    nb.cells[i:j + 1] = new
    nbformat.write(nb, path)
