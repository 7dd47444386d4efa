"""Write the first code cell of every notebook: it installs the course where it is missing.

On Colab and other hosted notebooks ``import tlcourse`` fails until the course is
installed, so each notebook starts with a cell that installs it from the repository
(``%pip install "tlcourse @ git+<url>@<branch>"``) and then imports it. pip then installs
only what is missing: the hosted torch satisfies ``torch>=2.4`` and stays as it is.

The address is set in one place, ``repository`` in ``book/_config.yml``; this script
writes it into the notebooks, and a test checks that every notebook's first code cell is
the one this script writes. Run it after changing the address::

    .venv/bin/python book/install_cell.py
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import nbformat
import yaml

__all__ = ["CELL_ID", "install_source", "repository", "write_install_cells"]

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "book" / "_config.yml"
PYPROJECT = REPO / "pyproject.toml"
CELL_ID = "install"
# The book does not show this cell (a reader of the website has nothing to install).
TAGS = ["remove-cell"]


def repository(*, config: Path = CONFIG) -> dict:
    """The ``repository`` section of the book's configuration (url, branch, published).

    Args:
        config: the Jupyter Book configuration file.
    """
    return yaml.safe_load(config.read_text())["repository"]


def _torch_ranges() -> str:
    """pyproject.toml's requirements on torch and torchvision, e.g. 'torch>=2.4, torchvision>=0.19'."""
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    return ", ".join(d for d in dependencies if d.startswith(("torch>", "torchvision>")))


def install_source(*, url: str, branch: str) -> str:
    """The source of the install cell for the repository at ``url`` on ``branch``.

    Args:
        url: the repository's address, e.g. ``https://github.com/owner/tlcourse``.
        branch: the branch to install from.
    """
    return (
        "# On Colab and other hosted notebooks, the first run installs the course here;\n"
        f"# their own torch stays (the course needs {_torch_ranges()}).\n"
        "try:\n"
        "    import tlcourse as tl\n"
        "except ModuleNotFoundError:\n"
        f'    %pip install --quiet "tlcourse @ git+{url}@{branch}"\n'
        "    import tlcourse as tl"
    )


def write_install_cells(paths: list[Path], *, config: Path = CONFIG) -> list[Path]:
    """Make the first code cell of each notebook the install cell; return those changed.

    Args:
        paths: the notebooks to update.
        config: the Jupyter Book configuration file holding the repository's address.
    """
    repo = repository(config=config)
    source = install_source(url=repo["url"].rstrip("/"), branch=repo.get("branch", "main"))
    changed = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
        cell = nb.cells[first]
        if cell.get("id") != CELL_ID:
            cell = nbformat.v4.new_code_cell(id=CELL_ID)
            nb.cells.insert(first, cell)
        if cell.source == source and cell.metadata.get("tags") == TAGS:
            continue
        cell.source = source
        cell.metadata["tags"] = list(TAGS)
        path.write_text(nbformat.writes(nb) + "\n")
        changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    paths = [Path(a) for a in args] or sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    for path in write_install_cells(paths):
        print(f"updated {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
