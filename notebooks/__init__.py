"""The runbook notebooks, installed as the data package ``runbook_lib.notebooks``.

Not code: this file makes the directory a regular package so that ``importlib.resources``
finds the notebooks and the bundled replays in a wheel and in an editable install alike
(see ``[tool.setuptools.package-dir]`` in pyproject.toml).
"""
