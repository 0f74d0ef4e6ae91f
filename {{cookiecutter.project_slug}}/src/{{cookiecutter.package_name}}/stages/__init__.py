"""This project's DVC stages, one module each, run as `python -m <package>.stages.<name>`."""
