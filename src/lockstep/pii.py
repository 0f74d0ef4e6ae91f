"""Patterns of personal data, ours: what prompt evaluation counts in `pii_leak_rate`, what the
service counts as a quality failure, what the inference log redacts and the gate's report masks.

The defaults are the patterns of MLflow's PIIDetection scorer, copied here so nothing depends on a
private MLflow name, and `detect` gives that scorer's verdict without importing MLflow (about 2.5 s
of each prompt evaluation); tests/toolkit/test_pii.py holds both to MLflow's. conf/monitor `redact`
replaces or extends them per project. Longer patterns first: a card number is not read as a phone.
"""

from __future__ import annotations

import re

DEFAULT_PATTERNS: dict[str, str] = {
    "email": r"[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}",
    "credit_card": r"\b(?:(?:4\d{3}|5[1-5]\d{2}|6(?:011|5\d{2}))[-\s]?\d{4}[-\s]?\d{4}[-\s]?\d{4}"
    r"|3[47]\d{2}[-\s]?\d{6}[-\s]?\d{5})\b",
    "ssn": r"\b\d{3}-\d{2}-\d{4}\b",
    "ip_address": r"\b(?:(?:25[0-5]|2[0-4]\d|[01]?\d\d?)\.){3}(?:25[0-5]|2[0-4]\d|[01]?\d\d?)\b",
    "phone": r"(?:(?:\+?1[-.\s]?)?\(?\d{3}\)?[-.\s]?\d{3}[-.\s]?\d{4}|\+[1-9]\d{1,14})",
}


def compiled(patterns: dict[str, str] | None = None) -> list[tuple[str, re.Pattern[str]]]:
    return [(kind, re.compile(p)) for kind, p in (DEFAULT_PATTERNS if patterns is None else patterns).items()]


DEFAULT = compiled()


def detect(text: str) -> list[str]:
    """The kinds of personal data in `text` by the default patterns; empty: none (PIIDetection's "yes")."""
    return [kind for kind, pattern in DEFAULT if pattern.search(text)]
