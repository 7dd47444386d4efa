"""Sphinx extension: render notebook markdown cells tagged ``exercise`` as styled exercise boxes.

myst-nb passes markdown cells through without their metadata (see the TODO in
``myst_nb.core.render.MditRenderMixin.render_nb_cell_markdown``). For cells tagged
``exercise`` we wrap the rendered content in a container with the class
``tlcourse-exercise``, which ``_static/custom.css`` styles. Exercise cells hold no
headings, so wrapping them cannot break the section structure. Code cells tagged
``solution`` get a toggle that says "Show the solution".
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from myst_nb.core.render import MditRenderMixin

_original = MditRenderMixin.render_nb_cell_markdown
_original_code = MditRenderMixin.render_nb_cell_code


def _render_markdown_cell(self: Any, token: Any) -> None:
    tags = token.meta.get("metadata", {}).get("tags", [])
    if "exercise" not in tags:
        return _original(self, token)
    container = nodes.container(classes=["tlcourse-exercise"])
    self.add_line_and_source_path(container, token)
    with self.current_node_context(container, append=True):
        self.render_children(token)
    return None


def _render_code_cell(self: Any, token: Any) -> None:
    metadata = token.meta.get("metadata", {})
    if "solution" in metadata.get("tags", []):  # label the toggle of a hidden solution as such
        metadata.setdefault("mystnb", {}).update(code_prompt_show="Show the solution", code_prompt_hide="Hide the solution")
    return _original_code(self, token)


def setup(app: Any) -> dict[str, Any]:
    MditRenderMixin.render_nb_cell_markdown = _render_markdown_cell
    MditRenderMixin.render_nb_cell_code = _render_code_cell
    return {"parallel_read_safe": True, "parallel_write_safe": True}
