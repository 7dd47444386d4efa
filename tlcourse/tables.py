"""Small tables for reports: plain text for ``print``, HTML for Jupyter's rich display.

``TransferReport`` and ``TrainableSummary`` print through these, so every report of the
package has one look. Nothing here is re-exported as ``tl.<name>``.

Example:
    >>> print(text_table(["name", "n"], [["fc2", 2]]))
    name  n
    ----  -
    fc2   2
"""

from __future__ import annotations

import html
from collections.abc import Sequence

__all__: list[str] = []  # helpers for the report classes; not part of tl.<name>


def text_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned plain-text table with a rule under the headers."""
    cells = [list(map(str, headers))] + [list(map(str, r)) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def html_table(headers: Sequence[str], rows: Sequence[Sequence[object]], caption: str) -> str:
    """HTML table with a caption, every cell escaped.

    Example:
        >>> html_table(["a"], [["<b>"]], caption="c")
        "<table><caption>c</caption><tr><th style='text-align:left'>a</th></tr><tr><td style='text-align:left'>&lt;b&gt;</td></tr></table>"
    """
    head = "".join(f"<th style='text-align:left'>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'>{html.escape(str(c))}</td>" for c in r) + "</tr>"
        for r in rows
    )
    return f"<table><caption>{html.escape(caption)}</caption><tr>{head}</tr>{body}</table>"
