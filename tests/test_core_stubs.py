"""The type stubs of ``recforge._core`` name every function and type the extension exports."""

import re
from pathlib import Path

import recforge
from recforge import _core


def test_every_public_name_of_the_extension_is_in_the_stubs():
    stub = (Path(recforge.__file__).parent / "_core.pyi").read_text(encoding="utf-8")
    public = [name for name in dir(_core) if not name.startswith("_")]
    missing = [
        name
        for name in public
        if not re.search(rf"^(def|class) {name}\b|^{name}\s*[:=]", stub, flags=re.MULTILINE)
    ]
    assert public and not missing, f"add these to src/recforge/_core.pyi: {missing}"
