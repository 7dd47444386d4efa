"""Sphinx extension: launch (Colab, Binder) and repository buttons only for a published course.

``book/_config.yml`` sets the repository's address in one place, ``repository.url``, and
says with ``repository.published`` whether that address is real. While it is not (a
placeholder), the pages are built without launch and repository buttons, so no button
leads nowhere; once it is, every chapter gets Colab and Binder launch buttons (Binder
builds from ``binder/``) and the header links to the repository.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["CONFIG", "LAUNCH_BUTTONS", "published", "theme_options"]

CONFIG = Path(__file__).resolve().parents[1] / "_config.yml"
LAUNCH_BUTTONS = {
    "notebook_interface": "jupyterlab",
    "colab_url": "https://colab.research.google.com",
    "binderhub_url": "https://mybinder.org",
}
_REPOSITORY_BUTTONS = ("use_repository_button", "use_issues_button", "use_edit_page_button",
                       "use_source_button")


def published(*, config: Path = CONFIG) -> bool:
    """Whether ``repository.published`` in the book's configuration is true.

    Args:
        config: the Jupyter Book configuration file.
    """
    return yaml.safe_load(config.read_text()).get("repository", {}).get("published") is True


def theme_options(options: dict[str, Any], *, is_published: bool) -> dict[str, Any]:
    """The theme's options with the launch and repository buttons on or off.

    Args:
        options: ``html_theme_options`` as Jupyter Book made them.
        is_published: whether the repository's address is real.

    >>> theme_options({"use_repository_button": True}, is_published=False)["launch_buttons"]
    {}
    >>> theme_options({}, is_published=True)["launch_buttons"]["colab_url"]
    'https://colab.research.google.com'
    """
    new = dict(options)
    if is_published:
        new["launch_buttons"] = {**new.get("launch_buttons", {}), **LAUNCH_BUTTONS}
        new["use_repository_button"] = True
    else:
        new["launch_buttons"] = {}
        new.update({key: False for key in _REPOSITORY_BUTTONS})
    return new


def _configure(app: Any, config: Any) -> None:
    config.html_theme_options = theme_options(config.html_theme_options,
                                              is_published=published())


def setup(app: Any) -> dict[str, Any]:
    app.connect("config-inited", _configure)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
