"""pytest set-up for the whole repository: the doctests of ``src/recforge`` (``--doctest-modules``).

pytest imports each file of ``src/recforge`` by path. With an editable install or
``PYTHONPATH=src`` that is the package under test. With ``pip install .`` the package under test is
the installed copy (the tree under ``src/`` has no compiled ``_core``): the doctests then run on the
installed modules, built from these same files, instead of failing with "import file mismatch".
A sub-package that needs an optional extra is left out when that extra is not installed.
"""

import importlib.util
import os
from pathlib import Path

import recforge

_SRC = Path(__file__).parent / "src" / "recforge"

#: sub-package of src/recforge -> the module its optional extra provides
_OPTIONAL_EXTRAS = {"distributed": "dask"}

collect_ignore = [
    str(_SRC / sub)
    for sub, module in _OPTIONAL_EXTRAS.items()
    if importlib.util.find_spec(module) is None
]

if Path(recforge.__file__).resolve().parent != _SRC.resolve():
    os.environ.setdefault("PY_IGNORE_IMPORTMISMATCH", "1")
