"""House rules of the repository: pinned environment, CI script, notebooks without outputs."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ ;\[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_requirements() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return project["dependencies"] + project["optional-dependencies"]["dev"]


def test_environment_yml_matches_pyproject() -> None:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert sorted(pip_section) == sorted(_pyproject_requirements()), (
        "environment.yml and pyproject.toml list different dependencies: keep them in step")
    assert "python=3.11" in env["dependencies"]


def test_constraints_pin_every_dependency_and_the_torch_pair() -> None:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[_name(name)] = version
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    missing = [r for r in _pyproject_requirements() if _name(r) not in pins]
    assert not missing, f"constraints.txt has no pin for {missing}"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    commands = [l for l in ci.splitlines() if l.strip() and not l.lstrip().startswith(("#", "set ", "cd ", "export "))]
    assert commands == ["make test"]
    assert "make test" in (REPO / "README.md").read_text()


def test_notebooks_are_committed_without_outputs() -> None:
    notebooks = sorted((REPO / "notebooks").glob("*.ipynb"))
    assert notebooks, "no notebooks found"
    for path in notebooks:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                assert not cell["outputs"] and cell["execution_count"] is None, f"{path.name} has outputs"


def test_every_notebook_is_in_the_book() -> None:
    toc = (REPO / "book" / "_toc.yml").read_text()
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        assert f"notebooks/{path.stem}" in toc, f"{path.name} is missing from book/_toc.yml"


def test_every_notebook_opens_with_start_and_names_what_it_teaches() -> None:
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# ")
        code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        assert any("tl.start(" in c for c in code[:3]), f"{path.name}: call tl.start() in its opening cells"
        assert any("solution" in c.get("metadata", {}).get("tags", []) for c in cells), f"{path.name}: no exercises"


def test_every_checked_cell_has_recorded_outputs_and_none_is_stale() -> None:
    """nbval compares the cells marked NBVAL_CHECK_OUTPUT with tests/notebook_outputs.json."""
    reference = json.loads((REPO / "tests" / "notebook_outputs.json").read_text())
    marked = {}
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        ids = {c["id"] for c in cells if c["cell_type"] == "code" and "NBVAL_CHECK_OUTPUT" in "".join(c["source"])}
        if ids:
            marked[path.stem] = ids
    recorded = {nb: set(cells) for nb, cells in reference.items()}
    assert recorded == marked, "run `make outputs` and review the diff of tests/notebook_outputs.json"
    assert all(outputs for cells in reference.values() for outputs in cells.values()), "a checked cell with no output checks nothing"
