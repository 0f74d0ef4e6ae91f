"""DVC stages, one module each: `python -m {{ cookiecutter.package_name }}.stages.<name>`.

Each module has a pure core (functions on data frames and models, tested on tiny data) and a
thin `main` that reads params.yaml, does the file I/O and reports errors in one line.
"""
