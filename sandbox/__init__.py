"""The sandbox's data, installed as the data package ``runbook_sandbox.data``.

Not code: this file makes the directory a regular package so that ``importlib.resources``
finds the chart, kwok config, build pins, migrations and traffic model in a wheel and in an
editable install alike (see ``[tool.setuptools.package-dir]`` in pyproject.toml). The harness
code itself is ``sandbox/harness``, installed as ``runbook_sandbox``.
"""
