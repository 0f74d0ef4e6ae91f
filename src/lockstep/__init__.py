"""Lockstep: the platform toolkit every Lockstep project runs on.

Generic machinery lives here (params, lock check, gate and reports, registry, prompts, language
models); a baked project keeps only what its team owns. Importing the package is cheap: each
command imports the heavy libraries it needs when it runs.
"""

import os

__version__ = "0.2.0"

# MLflow sends usage telemetry unless told not to, and on this path costs seconds a command
# (`lockstep prompts evaluate`: about 4 s of 9). A Lockstep project sends none, whoever starts it:
# make and the CI files set this too, but `dvc repro` run by hand, the stages and the service
# import the toolkit before MLflow. MLFLOW_DISABLE_TELEMETRY=false, set explicitly, still wins.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
