"""``recforge warmup`` compiles every Numba kernel of the package.

The check runs in a fresh interpreter with an empty ``NUMBA_CACHE_DIR``: every kernel is compiled
from scratch there, so a jitted function that no ``_warmup`` reaches, directly or as the callee of
one that is, has no signature afterwards. Dispatchers are found by walking every module of the
package, not the list ``warmup`` uses, so a kernel in a new module is caught too. The same process
then fits and uses every model of the demo on the bundled data: a signature that appears only then
(another dtype, layout, read-only flag or literal than ``warmup`` compiled) is a kernel the user's
first fit would still compile.
"""

import json
import os
import subprocess
import sys

import pytest

FIND_AND_WARM = r"""
import importlib, json, pkgutil
import recforge
from recforge.kernels._jit import dispatcher_of

dispatchers, skipped = {}, []
for info in pkgutil.walk_packages(recforge.__path__, "recforge."):
    if info.name.endswith("__main__"):  # running it is the CLI
        continue
    try:
        module = importlib.import_module(info.name)
    except ImportError as exc:  # an optional extra that is not installed
        if (exc.name or "").startswith("recforge"):
            raise
        skipped.append(info.name)
        continue
    for value in vars(module).values():
        value = dispatcher_of(value)  # parallel kernels are wrapped (fork safety)
        if value is not None:
            fn = value.py_func
            dispatchers[f"{fn.__module__}.{fn.__qualname__}"] = value
before = sorted(name for name, d in dispatchers.items() if d.signatures)

from recforge.kernels import warmup
spent = warmup()
uncompiled = sorted(name for name, d in dispatchers.items() if not d.signatures)
after_warmup = {name: {str(s) for s in d.signatures} for name, d in dispatchers.items()}

# every model of the demo, fitted and used on the bundled data as a new user would
from recforge import demo
from recforge.data import temporal_split
from recforge.datasets import adult, movielens_small
from recforge.evaluate import evaluate_recall

ml = movielens_small()
train, test = temporal_split(ml.interactions().positives(4.0), test_fraction=0.2, min_interactions=5)
for name, factory, *extra in demo.RECALL_MODELS:
    model = factory(None).fit(train, **(extra[0](ml) if extra else {}))
    evaluate_recall(model, train, test, k=10)
data = adult()
for name, factory in demo.RANKERS:
    factory(None).fit(data.X_train, data.y_train).predict_proba(data.X_test)
new_in_fits = sorted(
    f"{name}{s}" for name, d in dispatchers.items() for s in map(str, d.signatures)
    if s not in after_warmup[name]
)
print(json.dumps({
    "all": sorted(dispatchers), "compiled_at_import": before, "skipped": skipped,
    "spent": sorted(spent), "uncompiled": uncompiled, "new_in_fits": new_in_fits,
}))
"""


@pytest.fixture(scope="module")
def cold_warmup(tmp_path_factory):
    env = dict(
        os.environ,
        NUMBA_CACHE_DIR=str(tmp_path_factory.mktemp("numba_cache")),
        RECFORGE_NUMBA_CACHE="1",
    )
    out = subprocess.run(
        [sys.executable, "-c", FIND_AND_WARM], capture_output=True, text=True, env=env, timeout=1800
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_warmup_compiles_every_jitted_function(cold_warmup):
    found = cold_warmup["all"]
    # the walk really finds the kernels: one of each kernel module at least
    for module in (
        "kernels.linear",
        "kernels.personal_rank",
        "kernels.ranking",
        "kernels.segsort",
        "kernels.pipeline",
    ):
        assert any(name.startswith(f"recforge.{module}.") for name in found), module
    assert cold_warmup["uncompiled"] == [], "jitted functions that warmup() leaves uncompiled"


@pytest.mark.slow
def test_fits_compile_no_signature_beyond_warmup(cold_warmup):
    assert cold_warmup["new_in_fits"] == [], "signatures the models use that warmup() misses"


@pytest.mark.slow
def test_import_compiles_nothing(cold_warmup):
    assert cold_warmup["compiled_at_import"] == []


@pytest.mark.slow
def test_warmup_runs_each_kernel_module_hook(cold_warmup):
    from recforge.kernels import OTHER_KERNEL_MODULES

    modules = {name.rsplit(".", 1)[0] for name in cold_warmup["all"]}
    short = {m.removeprefix("recforge.kernels.") for m in modules}
    expected = {m for m in short if not m.startswith("recforge.")} | set(OTHER_KERNEL_MODULES)
    assert expected <= set(cold_warmup["spent"])
