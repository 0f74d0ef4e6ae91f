"""What a project may provide to the service and the monitor: its hooks, declared here as Protocols
and checked once, at start-up, with a one-line error that names conf/deploy.

conf/deploy `hooks` names the project's module (a baked project's `<package>.hooks`). Both hooks
are optional:

    def prepare_rows(frame: pandas.DataFrame) -> pandas.DataFrame      # before every predict
    def answer(prompt: Prompt, variables: dict, llm: Backend) -> Reply  # instead of one chat call

prepare_rows gets each request's rows as a DataFrame and returns what the model predicts from;
answer gets the locked prompt (lockstep.prompts.Prompt), the request's variables and the language
model (lockstep.llm.Backend), and returns its reply (lockstep.llm.Answer: text and token counts). Parameters are
matched by name, as a Protocol matches them: a function of another shape is refused at start-up,
never called with the wrong arguments on the first request.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from lockstep.config import StageError, first_line

if TYPE_CHECKING:
    import pandas as pd

    from lockstep.llm import Answer as Reply
    from lockstep.llm import Backend
    from lockstep.prompts import Prompt


class PrepareRows(Protocol):
    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame: ...


class Answer(Protocol):
    def __call__(self, prompt: Prompt, variables: dict[str, Any], llm: Backend) -> Reply: ...


class ProjectHooks(Protocol):
    """A project's hooks module, as the service sees it; each hook may be left out."""

    prepare_rows: PrepareRows | None
    answer: Answer | None


@dataclass(frozen=True)
class Hooks:
    """The hooks a project provides, checked; None where it provides none."""

    prepare_rows: PrepareRows | None = None
    answer: Answer | None = None
    module: str | None = None


SIGNATURES = {"prepare_rows": PrepareRows, "answer": Answer}


def _parameters(protocol: type) -> list[str]:
    return [p for p in inspect.signature(protocol.__call__).parameters if p != "self"]


def check(module: Any, name: str) -> Hooks:
    """The hooks of an imported module, each one's parameters matched with its Protocol's."""
    found: dict[str, Any] = {}
    for hook, protocol in SIGNATURES.items():
        fn = getattr(module, hook, None)
        if fn is None:
            continue
        wanted = _parameters(protocol)
        shape = f"{hook}({', '.join(wanted)})"
        if not callable(fn):
            raise StageError(f"conf/deploy hooks: {name}.{hook} is not a function; define {shape} or remove it")
        try:
            given = [
                p.name
                for p in inspect.signature(fn).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
            ]
        except (TypeError, ValueError):
            given = wanted  # a builtin or C callable: no signature to read, trusted
        if given != wanted:
            raise StageError(
                f"conf/deploy hooks: {name}.{hook}({', '.join(given)}) is not the hook {shape};"
                f" rename it, or point hooks at a module whose {hook} takes ({', '.join(wanted)})"
            )
        found[hook] = fn
    return Hooks(module=name, **found)


def load_hooks(name: str | None) -> Hooks:
    """The hooks of the module conf/deploy `hooks` names; none when it names none."""
    if not name:
        return Hooks()
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise StageError(
            f"conf/deploy hooks: cannot import {name} ({first_line(exc)}); install the project (make setup)"
            " or fix the module's name"
        ) from None
    return check(module, name)
