"""The quality signals of an answer that can be checked online, shared by the service (which counts
them per variant) and the monitor (which compares their rates with the golden sets')."""

from __future__ import annotations

import json
import re
from typing import Any

from lockstep.pii import detect

REFUSAL = re.compile(r"\b(I can(?:no|')t|I am unable|I'm unable|I won't|I'm sorry|As an AI)\b", re.IGNORECASE)


def quality_failures(text: str, schema: dict[str, Any] | None, check_pii: bool) -> list[str]:
    """The quality signals available online: empty, invalid JSON, schema failure, PII in the answer."""
    if not text.strip():
        return ["empty"]
    failures = []
    if schema:
        try:
            import jsonschema

            jsonschema.validate(json.loads(text), schema)
        except json.JSONDecodeError:
            failures.append("invalid")
        except jsonschema.ValidationError:
            failures.append("schema")
    if check_pii and detect(text):  # the prompt gate's detector
        failures.append("pii")
    return failures
