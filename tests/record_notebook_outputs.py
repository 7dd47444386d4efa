"""Record the expected outputs of the notebook cells tagged ``nbval-check-output``.

The notebooks are committed without outputs, so nbval has nothing to compare a tagged cell
with. This script runs every notebook in the reference setting (quick profile, the
real data that installs offline and a CIFAR-10 stand-in, CPU), keeps the outputs of the tagged cells only, and writes them to
``tests/notebook_outputs.json``, by notebook and cell id; the root ``conftest.py`` gives them
to nbval, which then checks those cells exactly. The tag is nbval's own (a cell tag rather
than a ``# NBVAL_CHECK_OUTPUT`` comment, so nothing shows on the website). Run it
(``make outputs``) after changing a tagged cell on purpose, and review the diff of the JSON
file before committing it.

Example:
    .venv/bin/python tests/record_notebook_outputs.py notebooks/04_moving_weights.ipynb
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "notebook_outputs.json"
MARKER = "nbval-check-output"  # nbval's cell tag for "compare this cell's outputs"
# The setting the reference outputs belong to; conftest.py checks the marked cells only in it.
# That of `make test`: quick profile, real data offline, a stand-in for CIFAR-10 alone.
SETTING = {"TLCOURSE_PROFILE": "quick", "TLCOURSE_STANDIN": "cifar10", "TLCOURSE_DOWNLOAD": "0"}


def is_marked(cell: dict) -> bool:
    """Whether ``cell`` (a notebook cell, as nbformat or JSON gives it) is tagged MARKER."""
    return cell.get("cell_type") == "code" and MARKER in cell.get("metadata", {}).get("tags", [])


# How a warning shows in a cell's output: "<ipython-input>:3: FutureWarning: ...".
WARNING_LINE = re.compile(r"\b[A-Z]\w*Warning\b:")


def warnings_in(outputs: list) -> list[str]:
    """The lines of ``outputs`` (one cell's, as nbformat or JSON gives them) that report a warning."""
    texts = [o.get("text", "") for o in outputs if o.get("output_type") == "stream"]
    return [line for text in texts for line in "".join(text).splitlines() if WARNING_LINE.search(line)]


def marked_outputs(path: Path) -> dict[str, list[dict]]:
    """Run ``path`` in a fresh kernel; the outputs of its marked cells, by cell id."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    return {cell.id: [dict(o) for o in cell.outputs] for cell in nb.cells
            if is_marked(cell)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/*.ipynb")
    args = parser.parse_args(argv)
    os.environ.update(SETTING)
    paths = args.notebooks or sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    reference = json.loads(REFERENCE.read_text()) if REFERENCE.exists() else {}
    with tempfile.TemporaryDirectory() as data:  # fresh data folder and checkpoints, as in CI
        os.environ["TLCOURSE_DATA"] = data
        for path in paths:
            cells = marked_outputs(path.resolve())
            if cells:
                reference[path.stem] = cells
            else:
                reference.pop(path.stem, None)
            print(f"{path.stem}: {len(cells)} tagged cell(s)")
    REFERENCE.write_text(json.dumps(reference, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    print(f"wrote {REFERENCE.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
