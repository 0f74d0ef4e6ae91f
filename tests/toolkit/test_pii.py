"""lockstep.pii gives MLflow PIIDetection's verdict without importing MLflow: same patterns, same answers."""

from __future__ import annotations

import subprocess
import sys

import pytest
from mlflow.genai.scorers import PIIDetection
from mlflow.genai.scorers.builtin_scorers import _PII_PATTERNS

from lockstep import pii

TEXTS = [
    "",
    "No personal data here, ticket 42 is resolved.",
    "Write to alice.smith+billing@example.co.uk for a refund.",
    "Call 555-123-4567 or (555) 123 4567.",
    "International: +442071838750.",
    "SSN 123-45-6789 on file.",
    "Card 4111 1111 1111 1111 and amex 3782 822463 10005.",
    "Server at 192.168.10.254 refused; 999.1.1.1 is no address.",
    "Version 1.2.3 shipped on 2024-05-01 with 3 fixes.",
    '{"category": "billing", "priority": "high"}',
]


def test_the_default_patterns_are_mlflows() -> None:
    assert pii.DEFAULT_PATTERNS == _PII_PATTERNS


@pytest.mark.parametrize("text", TEXTS)
def test_detect_agrees_with_mlflows_scorer(text: str) -> None:
    verdict = str(PIIDetection()(outputs=text).value)
    assert (verdict == "no") == bool(pii.detect(text)), (text, verdict, pii.detect(text))


def test_detect_names_the_kinds_found() -> None:
    assert pii.detect("mail bob@example.com from 10.0.0.1") == ["email", "ip_address"]
    assert pii.detect("Ticket 42 is resolved.") == []


def test_scoring_answers_does_not_import_mlflow() -> None:
    code = (
        "import sys; from lockstep.prompt_eval import score_cases; "
        "s = score_cases([{'id': 'a', 'output': 'mail bob@example.com', 'expected': 'x', 'latency_s': 0.1}], []); "
        "print(s[0]['pii'], 'mlflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1", "False"]
