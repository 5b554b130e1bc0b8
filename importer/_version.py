"""The package's version (also sent in the User-Agent), written here and only here.

pyproject.toml reads it from this file at build time (``[tool.setuptools.dynamic]``), so the
installed metadata always says the same; a plain constant costs a run nothing, where asking
importlib.metadata took milliseconds of every start.
"""

__version__ = "0.1.0"
