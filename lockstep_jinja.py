"""Jinja extensions loaded by cookiecutter.json: literal answers, and where the toolkit comes from.

(Named after the project, not cookiecutter's usual local_extensions.py: `cruft update` renders
the old and the new template in one process, and Python would keep the first module it imported
under a shared name.)

Cookiecutter renders every answer as a Jinja template (so that defaults can refer to other
answers), which breaks a project name or description containing `{{`, `{%` or `{#`. Answers
that refer to no cookiecutter variable are turned into a literal here, so they bake as typed.
It lives at the root because cookiecutter and cruft import local extensions from there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2.ext import Extension

JINJA_MARKERS = ("{{", "{%", "{#")


class LiteralAnswers(Extension):
    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        # Files of the template have a name; answers and path names are rendered from strings.
        if name is None and "cookiecutter" not in source and any(m in source for m in JINJA_MARKERS):
            return "{{ " + json.dumps(source) + " }}"
        return source


REMOTE_PREFIXES = {"gh:": "https://github.com/", "gl:": "https://gitlab.com/", "bb:": "https://bitbucket.org/"}


def toolkit_source(template: str, version: str) -> str:
    """Where a baked project installs the toolkit from: the same place its template came from.

    Baked from a local clone (a path, as the demo and the tests do), the toolkit is built from
    that clone, offline; baked from a Git URL, it is the tag v<version> of that repository. The
    result is the inline table of `[tool.uv.sources]` in the project's pyproject.toml.
    """
    url = template.removeprefix("git+")
    for short, full in REMOTE_PREFIXES.items():
        if url.startswith(short):
            url = full + url.removeprefix(short)
    if ("://" in url and not url.startswith("file://")) or url.startswith("git@"):
        return f'{{ git = "{url}", tag = "v{version}" }}'
    path = Path(url.removeprefix("file://"))
    # Files are rendered inside the template's project directory, one level below the clone.
    root = path.resolve() if path.is_absolute() and path.is_dir() else Path.cwd().parent
    return f"{{ path = {json.dumps(str(root))} }}"


class ToolkitSource(Extension):
    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        environment.filters["toolkit_source"] = toolkit_source
