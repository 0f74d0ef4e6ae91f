"""Lockstep: the platform toolkit every Lockstep project runs on.

Generic machinery lives here (params, lock check, gate and reports, registry, prompts, language
models); a baked project keeps only what its team owns. Importing the package is cheap: each
command imports the heavy libraries it needs when it runs.
"""

__version__ = "0.2.0"
