"""What a prompt run may cost, known before its first call, and a run that stops before it overspends.

Prices are pinned in one reviewed file, conf/prices.yaml: USD per 1,000 input and output tokens
for each model id a hosted API may be asked for. A model that is not in it is an error, never $0;
the local llama.cpp backend costs nothing and needs no entry. The file's sha256 goes into the gate
report's footer (lockstep.gate_report.provenance), so a figure can be traced to the prices it used.

The bound of one case is its input tokens, bounded by the UTF-8 bytes of its messages and response
schema (a byte-level BPE token holds at least one byte: exact counting would need the provider's
tokenizer files, which are not available offline) plus OpenAI's per-message framing, and its output
bounded by `max_tokens`. Before the first call, the bounds of the cases still to answer (answers
from the record/replay cache cost nothing) must fit `llm.budget_usd`; after each call, what was
spent plus the bounds of the cases left must still fit, or the run stops there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lockstep.config import LLMConfig, StageError

PRICES_FILE = Path("conf/prices.yaml")
PER_MESSAGE = 4  # tokens OpenAI's chat format adds around each message
PER_REPLY = 3  # and to prime the reply


@dataclass(frozen=True)
class Price:
    """USD per 1,000 tokens."""

    input: float
    output: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input + output_tokens * self.output) / 1000


FREE = Price(0.0, 0.0)


def read_prices(path: Path = PRICES_FILE) -> dict[str, Price]:
    """{model id: its price} from the pinned price file; one-line errors naming the file and entry."""
    entry_form = "`<model id>: {input: <USD per 1k tokens>, output: <USD per 1k tokens>}`"
    try:
        table = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise StageError(f"{path}: not found; pin the price of each hosted model there, {entry_form}") from None
    except yaml.YAMLError:
        raise StageError(f"{path}: not valid YAML; write one {entry_form} per model") from None
    if not isinstance(table, dict):
        raise StageError(f"{path}: expected a mapping of model ids, {entry_form}")
    prices = {}
    for model, entry in table.items():
        if not (isinstance(entry, dict) and set(entry) == {"input", "output"} and all(map(_price, entry.values()))):
            raise StageError(f"{path}: {model}: expected {entry_form}, both numbers >= 0")
        prices[str(model)] = Price(float(entry["input"]), float(entry["output"]))
    return prices


def _price(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def price_of(llm: LLMConfig, model: str | None = None, path: Path = PRICES_FILE) -> Price:
    """The price of the model a prompt is answered by (its own `model_settings.model`, else conf/llm's)."""
    if llm.backend == "llama_cpp":
        return FREE
    model = model or llm.model
    prices = read_prices(path)
    if model not in prices:
        raise StageError(
            f"{path}: no price for model '{model}'; add `{model}: {{input: <USD per 1k>, output: <USD per 1k>}}`"
            " (an unknown price is not $0)"
        )
    return prices[model]


def input_bound(messages: list[dict[str, str]], schema: dict[str, Any] | None = None) -> int:
    """At most how many input tokens these messages (and response schema) can be."""
    text = sum(len(m.get("content", "").encode()) + len(m.get("role", "").encode()) for m in messages)
    framing = PER_MESSAGE * len(messages) + PER_REPLY
    return text + framing + (len(json.dumps(schema).encode()) if schema else 0)


@dataclass
class Budget:
    """The spending of one prompt run against `llm.budget_usd` (None: no limit, still counted)."""

    name: str
    limit_usd: float | None
    price: Price
    spent_usd: float = 0.0
    bounds: list[float] = field(default_factory=list)  # of the cases still to answer, in order

    def plan(self, cases: list[tuple[int, int]]) -> float:
        """Take the (input bound, max_tokens) of every case to be asked; refuse before the first call
        when their bound exceeds the limit. Returns the bound in USD."""
        self.bounds = [self.price.cost(i, o) for i, o in cases]
        total = sum(self.bounds)
        if self.limit_usd is not None and total > self.limit_usd:
            inputs, outputs = sum(i for i, _ in cases), sum(o for _, o in cases)
            raise StageError(
                f"prompt {self.name}: {len(cases)} calls may cost up to ${total:.4f} (<= {inputs} input and"
                f" {outputs} output tokens), over llm.budget_usd ${self.limit_usd:.4f}; nothing was called."
                " Raise the budget in conf/llm, or record fewer cases"
            )
        return total

    def charge(self, input_tokens: int, output_tokens: int) -> None:
        """Count one answered call, then stop when what was spent and what is left may exceed the limit."""
        self.spent_usd += self.price.cost(input_tokens, output_tokens)
        if self.bounds:
            self.bounds.pop(0)
        left = sum(self.bounds)
        if self.limit_usd is not None and self.spent_usd + left > self.limit_usd:
            raise StageError(
                f"prompt {self.name}: spent ${self.spent_usd:.4f}; the {len(self.bounds)} calls left may cost"
                f" ${left:.4f} more, over llm.budget_usd ${self.limit_usd:.4f}: stopped. The answers so far are"
                " in the response cache; raise the budget in conf/llm and run again"
            )
