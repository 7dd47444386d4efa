"""The course's text says what is true: citations, and claims a reviewer found wrong.

None of these tests runs a notebook. They read the notebooks' sources, the book's Markdown,
``book/references.bib`` and the recorded outputs of the cells tagged ``nbval-check-output``
(``tests/notebook_outputs.json``, which nbval checks against a real run in ``make test``).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pandas as pd

import tlcourse as tl
from tests.record_notebook_outputs import REFERENCE

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
BIB = REPO / "book" / "references.bib"
# a MyST citation role and its keys: {cite}`a`, {cite:t}`a,b`, {cite:p}`a`, {cite:ps}`a`
CITE_ROLE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")
# a citation written out by hand with its year: "Yosinski et al. (2014)", "Yosinski et al., 2014",
# "(Caruana 1997)", "Pan and Yang's survey (2010)", "Wortsman et al. 2022"
PLAIN_CITATION = re.compile(
    r"\b[A-Z][\w'’-]+(?:\s+et\s+al\.|\s+and\s+[A-Z][\w'’-]+)?(?:'s|’s)?(?:\s+[a-z]+)?,?\s+\(?(?:19|20)\d\d\b")
# Plain-text citations allowed anyway, each with its reason: {(notebook, text): reason}.
PLAIN_ALLOWED: dict[tuple[str, str], str] = {}


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"])


def _markdown(path: Path) -> str:
    return "\n".join(_source(c) for c in _cells(path) if c["cell_type"] == "markdown")


def _prose(markdown: str) -> str:
    """Markdown without code spans, math and link targets (which may hold years or names)."""
    text = re.sub(r"```.*?```|\$\$.*?\$\$|\$[^$\n]*\$", " ", markdown, flags=re.DOTALL)
    text = CITE_ROLE.sub(" ", text)
    text = re.sub(r"`[^`\n]*`", " ", text)
    return re.sub(r"\]\([^)]*\)", "]", text)


def _bib_keys() -> set[str]:
    return set(re.findall(r"^@\w+\s*\{\s*([^,\s]+)\s*,", BIB.read_text(), flags=re.MULTILINE))


def _recorded(notebook: str, cell_id: str) -> str:
    outputs = json.loads(REFERENCE.read_text())[notebook][cell_id]
    return "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream")


def _cell(notebook: str, cell_id: str) -> dict:
    return next(c for c in _cells(REPO / "notebooks" / f"{notebook}.ipynb") if c["id"] == cell_id)


# --- citations --------------------------------------------------------------------------------

def test_every_cited_key_is_in_references_bib() -> None:
    """A {cite} role with an unknown key renders as a broken citation (and a build warning)."""
    keys = _bib_keys()
    texts = {p.name: _markdown(p) for p in NOTEBOOKS}
    texts |= {p.name: p.read_text() for p in sorted((REPO / "book").glob("*.md"))}
    missing = sorted({f"{name}: {key.strip()}" for name, text in texts.items()
                      for keys_ in CITE_ROLE.findall(text) for key in keys_.split(",")
                      if key.strip() not in keys})
    assert not missing, "cited but not in book/references.bib:\n" + "\n".join(missing)


def test_references_bib_entries_are_complete_and_unique() -> None:
    text = BIB.read_text()
    entries = re.split(r"\n(?=@)", text.strip())
    names = [re.match(r"@\w+\s*\{\s*([^,\s]+)", e).group(1) for e in entries]
    assert len(names) == len(set(names)), "a key is defined twice in book/references.bib"
    incomplete = [name for name, e in zip(names, entries)
                  if not all(re.search(rf"^\s*{field}\s*=", e, flags=re.MULTILINE)
                             for field in ("author", "title", "year"))
                  or not re.search(r"^\s*(journal|booktitle|publisher|institution|note)\s*=", e,
                                   flags=re.MULTILINE)]
    assert not incomplete, f"entries without author, title, year or where it appeared: {incomplete}"


def test_the_plain_citation_pattern_finds_what_it_is_meant_to() -> None:
    """The pattern of the next test, on the forms the chapters used before they cited by role."""
    for text in ["The experiment of Yosinski et al. (2014)", "picture (Yosinski et al., 2014), first",
                 "one head per task (Caruana 1997)", "Pan and Yang's survey (2010) gives",
                 "(model soups, Wortsman et al. 2022)", "observed by Neyshabur et al., 2020, in"]:
        assert PLAIN_CITATION.search(text), text
    for text in ["{cite:t}`yosinski2014transferable` split ImageNet", "1.28 million photos",
                 "CIFAR-10 has 50,000 images", "Pan and Yang write the task as"]:
        assert not PLAIN_CITATION.search(_prose(text)), text


def test_notebooks_cite_with_roles_not_by_hand() -> None:
    """Chapters cite as {cite:t}`key` or {cite:p}`key`, which links to the bibliography."""
    found = [f"{p.name}: {m.group(0)!r}" for p in NOTEBOOKS for m in PLAIN_CITATION.finditer(_prose(_markdown(p)))
             if (p.name, m.group(0)) not in PLAIN_ALLOWED]
    assert not found, ("cite with a {cite:t}/{cite:p} role (and add the entry to book/references.bib):\n"
                       + "\n".join(found))


# --- claims a reviewer found wrong ------------------------------------------------------------

def test_chapter_1_shows_one_image_of_each_class_in_class_order() -> None:
    """The figure's cell says "in class order"; its recorded output shows the labels it draws."""
    (cell,) = [c for c in _cells(REPO / "notebooks" / "01_what_is_transfer.ipynb")
               if "one image of each class, in class order" in _source(c)]
    text = _recorded("01_what_is_transfer", cell["id"])
    shown = [json.loads(line.split(": ")[-1]) for line in text.splitlines()]
    assert shown == [list(range(10))] * 2, text


def test_chapter_4_adapted_filters_match_the_source_up_to_float32_rounding() -> None:
    """The text says the adapted conv1 matches the source's; the recorded check must say True."""
    text = _recorded("04_moving_weights", "c21")
    assert text.startswith("adapted conv1 on R=G=B equals source conv1 on grey") and text.strip().endswith("True"), text


def test_chapter_6_prints_no_law_from_a_few_seeds() -> None:
    """The sweep's conclusion is computed from the runs and says how few seeds it rests on."""
    code = "\n".join(_source(c) for c in _cells(REPO / "notebooks" / "06_adapting.ipynb")
                     if c["cell_type"] == "code")
    assert "the more specific its features" not in code and "the later the layer" not in code
    conclusion = _source(_cell("06_adapting", "c19"))
    assert "len(seeds)" in conclusion and "not a rule" in conclusion


def test_chapter_8_permutes_the_columns_of_the_next_layer() -> None:
    """Permuting a layer's hidden units permutes the rows of its weight and the next layer's columns."""
    text = _markdown(REPO / "notebooks" / "08_fusing.ipynb")
    assert "rows of the next layer" not in text
    assert "columns of the next layer's weight matrix" in text


def _judging_functions() -> dict:
    """Chapter 9's judging cell, its functions and constants only, run on no data."""
    (cell,) = [c for c in _cells(REPO / "notebooks" / "09_choosing_source.ipynb")
               if c["cell_type"] == "code" and "def judged(" in _source(c)]
    tree = ast.parse(_source(cell))
    keep = [n for n in tree.body if isinstance(n, ast.FunctionDef)
            or (isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant))]
    namespace = {"tl": tl, "pd": pd, "SCRATCH": "LeNet · random init"}
    code = compile(ast.Module(body=keep, type_ignores=[]), "09_choosing_source", "exec")
    exec(code, namespace)  # noqa: S102 (the repository's own notebook code)
    return namespace


def test_chapter_9_calls_negative_transfer_only_like_for_like() -> None:
    """A random network is a control, never a source; a frozen probe is not judged against scratch."""
    runs = [  # candidate: (linear probe, fine-tuned) for two seeds
        ("LeNet · MNIST", (0.50, 0.70), (0.52, 0.71)),
        ("LeNet · random init", (0.50, 0.80), (0.51, 0.81)),
        ("Net · ImageNet", (0.60, float("nan")), (0.61, float("nan"))),
        ("Net · random init", (0.20, float("nan")), (0.21, float("nan"))),
    ]
    part = pd.DataFrame([{"target": "t", "candidate": name, "seed": seed,
                          "linear probe": acc[0], "fine-tuned": acc[1]}
                         for name, *accs in runs for seed, acc in enumerate(accs)])
    judged = _judging_functions()["judged"]
    probe = judged(part, "linear probe")["verdict"]
    # the MNIST LeNet's probe is as good as a probe on random LeNet features: no verdict of harm,
    # although it is far below the LeNet trained from scratch (0.805), which trains every layer
    assert probe["LeNet · MNIST"] == "no clear difference", probe.to_dict()
    assert probe["Net · ImageNet"] == "positive transfer", probe.to_dict()
    for control in ["LeNet · random init", "Net · random init"]:
        assert "transfer" not in probe[control].replace("no transfer", ""), probe.to_dict()
    tuned = judged(part, "fine-tuned")["verdict"]
    # fine-tuned against the LeNet fine-tuned from random init: the same protocol
    assert tuned["LeNet · MNIST"] == "negative transfer", tuned.to_dict()
    assert "Net · ImageNet" not in tuned, "not fine-tuned, so not judged fine-tuned"


def test_chapter_9_fills_no_gaps_that_pandas_warns_about() -> None:
    """A text fill on numeric columns warns (pandas 3.1: "'str' is not supported as a fill value").

    The chapter builds its table of strings instead, with "not run" written in; the warning
    itself is caught where the notebooks run (conftest.py for nbval, test_book.py for the site).
    """
    source = "\n".join(_source(c) for c in _cells(REPO / "notebooks" / "09_choosing_source.ipynb")
                       if c["cell_type"] == "code")
    assert ".fillna(" not in source.replace(".fillna(0)", ""), "build the table of strings instead"
