"""The website: it builds with warnings as errors, and every page works in a real browser.

The browser is Debian's ``chromium`` (``make test`` installs it when it runs as root);
pages are opened headless from the built files, as a reader would open them.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType
from urllib.parse import unquote, urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
HTML = REPO / "book" / "_build" / "html"
SHOTS = REPO / "book" / "_build" / "screenshots"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--virtual-time-budget=3000"]
PLOTTING = re.compile(r"\btl\.(show_images|show_filters|plot_history|plot_confusion)\(|\.plot\(|\bplt\.")


# What sphinx-book-theme renders for a launch (Colab, Binder) or repository button.
BUTTON_MARKS = ("launch-buttons", "Launch interactive content", "source-repository-button",
                "colab.research.google.com", "mybinder.org")


def _repository() -> dict:
    return yaml.safe_load((REPO / "book" / "_config.yml").read_text())["repository"]


def _toc_pages() -> list[str]:
    toc = yaml.safe_load((REPO / "book" / "_toc.yml").read_text())
    return [toc["root"]] + [ch["file"] for part in toc["parts"] for ch in part["chapters"]]


@pytest.fixture(scope="module")
def built_book() -> Path:
    from tests import nbval_runs

    # the notebooks nbval ran in this session are not executed a second time (tests/nbval_runs.py)
    nbval_runs.stage(REPO / "book" / "_build" / ".jupyter_cache")
    result = subprocess.run(["make", "book"], cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return HTML


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    exe = shutil.which("chromium")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; `make test` installs Debian's package when run as root")
        pytest.skip("chromium is not installed: `sudo apt-get install chromium` (Debian/Ubuntu) to run the browser test")
    return [exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"]


def _source_title(page: str) -> str:
    """The page's first '# ' heading in its source (notebook or Markdown), as plain text."""
    nb, md = REPO / f"{page}.ipynb", REPO / f"{page}.md"
    text = "".join(json.loads(nb.read_text())["cells"][0]["source"]) if nb.exists() else md.read_text()
    heading = next(line[2:] for line in text.splitlines() if line.startswith("# "))
    return re.sub(r"[*_`]", "", heading).strip()


class _Links(HTMLParser):
    """Collects hrefs/srcs, element ids, the <title> and <img> sources of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.images: list[str] = []
        self.ids: set[str] = set()
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag == "img" and a.get("src"):
            self.images.append(a["src"])
        if tag == "title":
            self._in_title = True

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False


def _parse(text: str) -> _Links:
    p = _Links()
    p.feed(text)
    return p


def test_book_builds_and_renders_every_page(built_book: Path) -> None:
    for page in _toc_pages():
        built = built_book / f"{page}.html"
        assert built.is_file(), f"{page} was not built"
        text = built.read_text()
        assert "Traceback (most recent call last)" not in text, f"{page} shows a traceback"
    setup = (built_book / "notebooks" / "00_setup.html").read_text()
    assert "Show the solution" in setup  # the solutions' dropdowns say what they hide


def executed_warnings(executed: Path) -> list[str]:
    """Every warning printed by a cell of the notebooks the book build executed (in ``executed``)."""
    from tests.record_notebook_outputs import warnings_in

    return [f"{nb.name}, cell {cell.get('id')}: {line}"
            for nb in sorted(executed.glob("*.ipynb"))
            for cell in json.loads(nb.read_text())["cells"] if cell["cell_type"] == "code"
            for line in warnings_in(cell.get("outputs", []))]


def test_no_page_shows_a_warning(built_book: Path) -> None:
    """A cell's warning (pandas' FutureWarning, a deprecation) would show on the page under the cell."""
    executed = built_book.parent / "jupyter_execute" / "notebooks"
    chapters = sorted(p.name for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(p.name for p in executed.glob("*.ipynb")) == chapters, "the build keeps each executed chapter"
    found = executed_warnings(executed)
    assert not found, "cells that print a warning:\n" + "\n".join(found)


def test_every_chapter_shows_its_exercises_in_boxes_and_its_solutions_folded(built_book: Path) -> None:
    """sphinx-exercise's boxes in every chapter; each solution in a dropdown; every check unanswered."""
    from tlcourse.exercises.notebooks import check_call

    for nb_path in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(nb_path.read_text())["cells"]
        prompts = [c for c in cells if "exercise" in c.get("metadata", {}).get("tags", [])]
        solutions = [c for c in cells if "solution" in c.get("metadata", {}).get("tags", [])]
        checks = [c for c in cells if c["cell_type"] == "code" and check_call("".join(c["source"]))]
        assert prompts and len(prompts) == len(solutions) == len(checks), nb_path.name
        page = (built_book / "notebooks" / f"{nb_path.stem}.html").read_text()
        assert page.count('class="exercise admonition"') == len(prompts), nb_path.name
        assert page.count('class="solution dropdown admonition"') == len(solutions), nb_path.name
        # the book ran the notebook as a learner's first Run All: no answer, so no "Correct" box
        assert not re.search(r"Exercise \d+\.\d+: Correct", page), f"{nb_path.name} shows a correct answer"
        assert page.count("No answer yet") >= len(checks), f"{nb_path.name}: a check shows no result"


def test_no_broken_internal_links(built_book: Path) -> None:
    pages = {p: _parse(p.read_text()) for p in built_book.rglob("*.html")}
    broken = []
    for page, parsed in pages.items():
        for href in parsed.links + parsed.images:
            parts = urlsplit(href)
            if parts.scheme or parts.netloc or href.startswith(("mailto:", "javascript:")):
                continue  # external: not checked offline
            target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(built_book)} -> {href}")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target.read_text()).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{page.relative_to(built_book)} -> {href} (no such anchor)")
    assert not broken, "broken internal links:\n" + "\n".join(broken)


def test_pages_in_a_real_browser(built_book: Path, chromium: list[str]) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for page in _toc_pages():
        url = (built_book / f"{page}.html").as_uri()
        result = subprocess.run([*chromium, "--dump-dom", url], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and "<body" in result.stdout, f"{page} did not load: {result.stderr[-500:]}"
        dom = _parse(result.stdout)
        title = _source_title(page)
        assert dom.title.startswith(title), f"{page}: the browser's <title> {dom.title!r} is not {title!r}"
        notebook = REPO / f"{page}.ipynb"
        if notebook.exists() and PLOTTING.search(notebook.read_text()):
            figures = [src for src in dom.images if "_images/" in src]
            assert figures, f"{page} plots but shows no figure"
            for src in figures:
                path = (built_book / page).parent / unquote(urlsplit(src).path)
                assert path.is_file() and path.stat().st_size > 1000, f"{page}: figure {src} missing or empty"
    for name, page in (("intro", "book/intro"), ("chapter-00", "notebooks/00_setup")):
        shot = SHOTS / f"{name}.png"
        url = (built_book / f"{page}.html").as_uri()
        subprocess.run([*chromium, "--window-size=1280,2400", f"--screenshot={shot}", url],
                       capture_output=True, timeout=120, check=True)
        assert shot.stat().st_size > 10_000, f"screenshot {shot} is empty"


def _launch_extension():
    path = REPO / "book" / "_ext" / "tlcourse_launch.py"
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_buttons_follow_whether_the_repository_is_published() -> None:
    ext = _launch_extension()
    assert ext.published() is (_repository().get("published") is True)
    made = {"use_repository_button": True, "launch_buttons": {"colab_url": "https://colab.research.google.com"}}
    off = ext.theme_options(made, is_published=False)
    assert off["launch_buttons"] == {} and not off["use_repository_button"]
    on = ext.theme_options({}, is_published=True)
    assert on["use_repository_button"] and on["launch_buttons"]["colab_url"] and on["launch_buttons"]["binderhub_url"]


def test_no_dead_launch_or_repository_button(built_book: Path) -> None:
    """While the repository's address is a placeholder, no page links to it or launches from it."""
    repository = _repository()
    pages = sorted(built_book.rglob("*.html"))
    if repository.get("published"):
        chapter = (built_book / "notebooks" / "00_setup.html").read_text()
        org_repo = repository["url"].rstrip("/").split("github.com/")[-1]
        assert f"colab.research.google.com/github/{org_repo}" in chapter and "mybinder.org" in chapter
        return
    dead = []
    for page in pages:
        text = page.read_text()
        dead += [f"{page.relative_to(built_book)}: {mark}" for mark in BUTTON_MARKS if mark in text]
        dead += [f"{page.relative_to(built_book)}: {href}" for href in _parse(text).links
                 if href.startswith(repository["url"])]
    assert not dead, "buttons or links to an address that is not published:\n" + "\n".join(dead)


@functools.cache
def _time_notebooks() -> ModuleType:
    """benchmarks/time_notebooks.py, loaded once: its ``datasets_used`` reads a chapter's ``tl.start``."""
    spec = importlib.util.spec_from_file_location("time_notebooks", REPO / "benchmarks" / "time_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _datasets_used(notebook: Path) -> list[str]:
    """The datasets a chapter's ``tl.start(..., datasets=[...])`` names (all of them without it)."""
    assert "tl.start(" in notebook.read_text(), f"{notebook.name} has no tl.start(...) cell"
    return _time_notebooks().datasets_used(notebook)


def test_stand_in_boxes_name_only_the_stand_ins_each_chapter_uses(built_book: Path) -> None:
    """Issue 12: a chapter shows the stand-in box only if a dataset it uses is one, and names only those."""
    import tlcourse as tl

    standins = tl.standin_datasets()
    for notebook in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        page = (built_book / "notebooks" / f"{notebook.stem}.html").read_text()
        boxes = re.findall(r"Stand-in data\.</strong>\s*(.*?)\s*\(TLCOURSE_STANDIN names", page, re.S)
        expected = [tl.DATASET_TITLES[n] for n in tl.DATASETS if n in standins and n in _datasets_used(notebook)]
        if not expected:
            assert not boxes, f"{notebook.stem} shows a stand-in box, but uses no stand-in: {boxes}"
            continue
        assert boxes, f"{notebook.stem} uses {expected} as stand-ins and shows no box"
        named = re.split(r",\s*|\s+and\s+", re.sub(r"\s+(is|are) a?\s*stand-ins?$", "", boxes[0]))
        assert named == expected, f"{notebook.stem}: the box names {named}, the stand-ins it uses are {expected}"
