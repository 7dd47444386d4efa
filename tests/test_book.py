"""The website builds, with warnings as errors, and every chapter becomes a page."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.book
def test_book_builds_with_warnings_as_errors() -> None:
    result = subprocess.run(["make", "book"], cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    html = REPO / "book" / "_build" / "html"
    toc = yaml.safe_load((REPO / "book" / "_toc.yml").read_text())
    pages = [toc["root"]] + [ch["file"] for part in toc["parts"] for ch in part["chapters"]]
    for page in pages:
        built = html / f"{page}.html"
        assert built.is_file(), f"{page} was not built"
        assert "Traceback" not in built.read_text(), f"{page} shows a traceback"
    setup = (html / "notebooks" / "00_setup.html").read_text()
    assert "<img" in setup  # the sample grids were rendered
    assert "tag_hide-cell" in setup  # the solution cells are behind a toggle
