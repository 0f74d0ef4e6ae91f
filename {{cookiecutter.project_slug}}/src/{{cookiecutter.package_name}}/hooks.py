"""This project's hooks: its own code that the service (`make serve`) and the monitor call.

conf/deploy `hooks` names this module. The toolkit checks it once, at start-up, against the hooks
it declares (lockstep.hooks), both optional, matched by name and parameters:

    prepare_rows(frame) -> frame             the rows of every predict request, as the model wants them
    answer(prompt, variables, llm) -> reply  answer a prompt yourself instead of with one chat call
                                             (prompt: lockstep.prompts.Prompt, llm: lockstep.llm.Backend,
                                             reply: lockstep.llm.Answer)
"""

from functools import cache

import pandas as pd
from lockstep.config import load


@cache
def target() -> str:
    return load("data")[0].target


def prepare_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The features the model predicts from: the rows given, less the target if they carry it."""
    return frame.drop(columns=[target()], errors="ignore")
