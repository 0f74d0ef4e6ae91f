"""The promotion policies' tests pass: policies/*_test.rego and the toolkit's central ones (make policy-test)."""

from pathlib import Path

import pytest
from lockstep.policy import run_tests

ROOT = Path(__file__).resolve().parents[1]


def test_policy_tests_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    results = run_tests(ROOT / "policies")
    assert any(r["file"].startswith(str(ROOT / "policies")) for r in results), "policies/ has no tests"
    failed = [f"{r['file']}: {r['test']} {r['error'] or ''}" for r in results if not r["passed"]]
    assert not failed, failed
