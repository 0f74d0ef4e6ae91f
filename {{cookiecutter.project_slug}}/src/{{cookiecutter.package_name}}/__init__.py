"""The team's own code: the prepare, train and evaluate stages, and the application.

Generic machinery (params, gate, registry, prompts, language models) comes from the Lockstep
toolkit (`lockstep`), pinned in pyproject.toml.
"""
