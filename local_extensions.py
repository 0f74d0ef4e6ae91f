"""Jinja extension loaded by cookiecutter.json: answers are text, never templates.

Cookiecutter renders every answer as a Jinja template (so that defaults can refer to other
answers), which breaks a project name or description containing `{{`, `{%` or `{#`. Answers
that refer to no cookiecutter variable are turned into a literal here, so they bake as typed.
It lives at the root because cookiecutter and cruft import local extensions from there.
"""

from __future__ import annotations

import json

from jinja2.ext import Extension

JINJA_MARKERS = ("{{", "{%", "{#")


class LiteralAnswers(Extension):
    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        # Files of the template have a name; answers and path names are rendered from strings.
        if name is None and "cookiecutter" not in source and any(m in source for m in JINJA_MARKERS):
            return "{{ " + json.dumps(source) + " }}"
        return source
