"""The MLflow client every registry command uses: the project's tracking URI, bounded retries,
and MLflow's errors as one line with the password redacted and the fix named."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lockstep.config import StageError, one_line, redact, tracking_uri

# Bounded retries and timeouts for a tracking server: MLflow's defaults retry for minutes.
FAIL_FAST = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
             "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}  # fmt: skip


def fail_fast() -> None:
    """Bound MLflow's HTTP retries and timeouts for this process (a user's own setting wins)."""
    for key, value in FAIL_FAST.items():
        os.environ.setdefault(key, value)


@contextmanager
def mlflow_client() -> Iterator[Any]:
    """An MlflowClient on the project's tracking URI; MLflow's errors become one StageError line."""
    fail_fast()
    import logging

    import mlflow
    from mlflow.exceptions import MlflowException

    # Keep the output to what a person needs; MLflow's own warnings still show.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)
    mlflow.set_tracking_uri(tracking_uri())
    try:
        yield mlflow.MlflowClient()
    except MlflowException as exc:
        uri = tracking_uri()
        # MLflow's message repeats the URI, password and all, in the URL it failed to reach
        detail = exc.message.replace(uri, redact(uri))
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            fix = "register it first (make repro / make register), or promote a version (make promote)"
        else:
            fix = "start the server, or unset MLFLOW_TRACKING_URI to use the local mlflow.db"
        raise StageError(f"MLflow at {redact(uri)}: {one_line(detail)}; {fix}") from None
