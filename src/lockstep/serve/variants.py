"""A variant of the service: the locked model and prompts of one arm, loaded from the registry by
number (`models:/<name>/<N>`, `prompts:/<name>/<N>`), never by alias."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lockstep.deploy_lock import Locked
from lockstep.serve.routing import Faults


@dataclass
class Variant:
    name: str
    model: Any  # an MLflow pyfunc model
    locked: Locked
    prompts: dict[str, Any]  # name -> lockstep.prompts.Prompt
    faults: Faults = field(default_factory=Faults)
    columns: dict[str, str] | None = None  # the model's input columns and types, from its signature
    classes: list[str] | None = None  # a binary model's class names of 0 and 1 (lockstep.classes)

    def versions(self) -> dict[str, Any]:
        return self.locked.versions()


def registry_prompt(name: str, version: int) -> Any:
    """prompts:/name/N from the Prompt Registry as a lockstep Prompt (never by alias)."""
    import mlflow

    from lockstep.prompts import VARIABLE, Message, ModelSettings, Prompt

    loaded = mlflow.genai.load_prompt(f"prompts:/{name}/{version}")
    template = loaded.template
    texts = [template] if isinstance(template, str) else [m["content"] for m in template]
    return Prompt(
        name=name,
        description=loaded.commit_message or name,
        template=template if isinstance(template, str) else [Message(**m) for m in template],
        input_variables=sorted({v for text in texts for v in VARIABLE.findall(text)}),
        model_settings=ModelSettings(**(loaded.model_config or {})),
        response_format=loaded.response_format,
    )


def load_variant(name: str, locked: Locked) -> Variant:
    import mlflow

    from lockstep.classes import of_version
    from lockstep.serve.validate import columns

    model = mlflow.pyfunc.load_model(locked.model.uri)
    prompts = {p.name: registry_prompt(p.name, p.version) for p in locked.prompts.values()}
    names = of_version(locked.model.name, locked.model.version)
    return Variant(name, model, locked, prompts, columns=columns(model), classes=names)
