"""This project's DVC stages, one module each: `python -m {{ cookiecutter.package_name }}.stages.<name>`."""
