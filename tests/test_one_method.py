"""Issue 13's "one method": one function trains every source, one rule decides every comparison.

These read the package and the notebooks as text; they execute nothing.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

import tlcourse as tl

REPO = Path(__file__).resolve().parents[1]
PACKAGE = sorted((REPO / "tlcourse").glob("*.py"))
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]*.ipynb"))
REMOVED = ["source_model", "pretrained_lenet", "describe_difference", "digit_tensors", "source_checkpoint_path",
           "CaseStudyInterrupted"]
# Rules of thumb the course used before it had one comparison: none may come back.
OWN_RULES = re.compile(r"standard_error|2 \* se\b|std_a \+ std_b|sd_a \+ sd_b|max\(sd|seed-to-seed spread")


def _code(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def _functions(path: Path) -> list[str]:
    return [n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)]


def test_one_source_function_and_one_comparison_function_in_the_package() -> None:
    defined = {p.stem: _functions(p) for p in PACKAGE}
    trainers = [f"{m}.{f}" for m, fs in defined.items() for f in fs if re.fullmatch(r"(train|pretrained)_\w*source\w*|"
                                                                                 r"source_model|pretrained_lenet", f)]
    assert trainers == ["sources.train_source"]
    comparers = [f"{m}.{f}" for m, fs in defined.items() for f in fs if re.search(r"compare|describe_diff", f)]
    assert comparers == ["comparison.compare_arms"], comparers
    for name in REMOVED:
        assert not hasattr(tl, name), f"tl.{name} is back: use tl.train_source / tl.compare_arms"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_notebook_uses_a_removed_helper_or_a_rule_of_its_own(path: Path) -> None:
    code = _code(path)
    for name in REMOVED:
        assert f"tl.{name}" not in code, f"{path.name} calls tl.{name}: use tl.train_source / tl.compare_arms"
    assert not OWN_RULES.search(code), f"{path.name} decides a comparison by a rule of its own: use tl.compare_arms"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_that_trains_a_source_gets_it_from_train_source(path: Path) -> None:
    code = _code(path)
    trains_on_digits = re.search(r"\bsource\w*\s*=\s*tl\.(LeNet|LeNetBN)\(", code) and "tl.fit(" in code
    assert not trains_on_digits or "tl.train_source(" in code, \
        f"{path.name} builds and trains a source itself: use tl.train_source"
    if "tl.train_source(" not in code:
        assert not re.search(r"(?i)\bsource\b.*\b(Adam|SGD)\(", code), f"{path.name} trains a source by hand"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_that_judges_arms_does_it_by_the_one_comparison(path: Path) -> None:
    code = _code(path)
    judges = re.search(r"cannot tell|is higher|is lower|negative transfer|positive transfer", code)
    assert not judges or re.search(r"tl\.(compare_arms|case_study_comparisons|transfer_verdicts)\(", code), \
        f"{path.name} words a verdict without tl.compare_arms"
