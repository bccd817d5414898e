"""Validation helpers, thread resolution, model files and the package surface."""

import io
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import recforge
from recforge import _threads
from recforge._params import ParamsMixin
from recforge._validation import (
    check_1d,
    check_2d_float,
    check_choice,
    check_float,
    check_in_place,
    check_int,
    check_random_state,
)
from recforge.exceptions import ModelFileError
from recforge.io import FORMAT_VERSION, load_arrays, save_arrays


class TestValidation:
    def test_check_int(self):
        assert check_int(np.int64(3), "n") == 3
        with pytest.raises(TypeError, match="n must be an integer"):
            check_int(3.0, "n")
        with pytest.raises(TypeError, match="flag"):
            check_int(True, "flag")
        with pytest.raises(ValueError, match="n must be >= 1, got 0"):
            check_int(0, "n", min_value=1)
        with pytest.raises(ValueError, match="<= 5"):
            check_int(6, "n", max_value=5)

    def test_check_float(self):
        assert check_float(1, "alpha") == 1.0
        with pytest.raises(ValueError, match="alpha must be finite"):
            check_float(float("nan"), "alpha")
        with pytest.raises(ValueError, match="alpha must be > 0"):
            check_float(0.0, "alpha", min_value=0, min_inclusive=False)
        with pytest.raises(ValueError, match="alpha must be < 1"):
            check_float(1.0, "alpha", max_value=1, max_inclusive=False)
        with pytest.raises(TypeError, match="alpha"):
            check_float("0.5", "alpha")

    def test_check_choice(self):
        assert check_choice("a", "mode", {"a", "b"}) == "a"
        with pytest.raises(ValueError, match=r"mode must be one of \['a', 'b'\]"):
            check_choice("c", "mode", {"a", "b"})

    def test_check_random_state(self):
        a = check_random_state(3).random(4)
        np.testing.assert_array_equal(a, check_random_state(3).random(4))
        gen = np.random.default_rng(0)
        assert check_random_state(gen) is gen
        with pytest.raises(ValueError, match="random_state"):
            check_random_state(-1)
        with pytest.raises(TypeError, match="random_state"):
            check_random_state("seed")

    def test_check_1d(self):
        data = np.array([1.0, 2.0])
        out = check_1d(data, "w", dtype=np.float32)
        assert out.dtype == np.float32 and data.dtype == np.float64
        with pytest.raises(ValueError, match="w must be 1-D"):
            check_1d(np.zeros((2, 2)), "w")
        with pytest.raises(ValueError, match=r"w must be finite.*position 1"):
            check_1d([1.0, np.inf], "w", finite=True)
        with pytest.raises(ValueError, match="integers"):
            check_1d([1.5], "ids", dtype=np.int64)
        with pytest.raises(TypeError, match="numeric"):
            check_1d(["a"], "ids", dtype=np.int64)
        with pytest.raises(ValueError, match="must not be empty"):
            check_1d([], "ids", allow_empty=False)

    def test_check_2d_float(self):
        out = check_2d_float(np.asfortranarray(np.ones((3, 2))), "X")
        assert out.flags.c_contiguous and out.dtype == np.float32
        with pytest.raises(ValueError, match="X must be finite"):
            check_2d_float([[np.nan]], "X")
        with pytest.raises(ValueError, match="X must be 2-D"):
            check_2d_float([1, 2], "X")

    def test_check_in_place(self):
        arr = np.zeros((3, 2), np.float32)
        assert check_in_place(arr, "v", np.float32, 2) is arr
        assert check_in_place(arr, "v", np.float32) is arr  # any ndim
        read_only = arr.copy()
        read_only.flags.writeable = False
        for bad in (arr.astype(np.float64), arr.T, read_only, arr.tolist(), arr[0]):
            with pytest.raises(TypeError, match="v must be a writeable C-contiguous 2-D float32"):
                check_in_place(bad, "v", np.float32, 2)


class TestThreads:
    def test_resolution(self):
        cores = _threads.available_cores()
        assert cores >= 1
        assert _threads.resolve_n_threads(None) == cores
        assert _threads.resolve_n_threads(0) == cores
        assert _threads.resolve_n_threads(-1) == cores
        assert _threads.resolve_n_threads(3) == 3
        assert _threads.resolve_n_threads(-1000) == 1
        with pytest.raises(TypeError, match="n_threads"):
            _threads.resolve_n_threads(1.5)

    def test_numba_threads_restores_on_error(self):
        import numba

        before = numba.get_num_threads()
        with pytest.raises(RuntimeError):
            with _threads.numba_threads(1):
                assert numba.get_num_threads() == 1
                raise RuntimeError("boom")
        assert numba.get_num_threads() == before

    def test_blas_limit(self):
        from threadpoolctl import threadpool_info

        with _threads.limit_blas_threads(1):
            assert all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "blas")


class TestModelFiles:
    def _save(self, target, **overrides):
        kwargs = dict(
            model_class="Thing",
            params={"a": 1},
            arrays={"x": np.arange(4), "names": np.array(["a", "bc"])},
        )
        kwargs.update(overrides)
        save_arrays(target, **kwargs)

    def test_round_trip_path_and_buffer(self, tmp_path):
        path = tmp_path / "m.npz"
        self._save(path)
        params, arrays, meta = load_arrays(path, expected_class="Thing", required=("x",))
        assert params == {"a": 1} and meta == {}
        np.testing.assert_array_equal(arrays["x"], np.arange(4))
        assert arrays["names"].tolist() == ["a", "bc"]
        buffer = io.BytesIO()
        self._save(buffer)
        buffer.seek(0)
        assert load_arrays(buffer)[0] == {"a": 1}

    def test_object_arrays_refused(self, tmp_path):
        with pytest.raises(TypeError, match="pickle"):
            self._save(tmp_path / "m.npz", arrays={"x": np.array([object()])})

    def test_wrong_class_missing_arrays_future_version(self, tmp_path):
        path = tmp_path / "m.npz"
        self._save(path)
        with pytest.raises(ModelFileError, match="'Thing' model, not a 'Other'"):
            load_arrays(path, expected_class="Other")
        with pytest.raises(ModelFileError, match=r"missing arrays \['y'\]"):
            load_arrays(path, required=("x", "y"))
        record = {
            "format": "recforge-model",
            "format_version": FORMAT_VERSION + 1,
            "class": "Thing",
        }
        future = tmp_path / "future.npz"
        np.savez(future, __meta__=np.frombuffer(json.dumps(record).encode(), np.uint8))
        with pytest.raises(ModelFileError, match="upgrade recforge"):
            load_arrays(future)

    def test_corrupt_metadata_and_pickled_arrays(self, tmp_path):
        bad_json = tmp_path / "bad.npz"
        np.savez(bad_json, __meta__=np.frombuffer(b"{not json", np.uint8))
        with pytest.raises(ModelFileError, match="corrupt"):
            load_arrays(bad_json)
        pickled = tmp_path / "pickled.npz"
        np.savez(pickled, __meta__=np.array([{"evil": 1}], dtype=object))
        with pytest.raises(ModelFileError):
            load_arrays(pickled)

    def test_truncated_and_garbage(self, tmp_path):
        path = tmp_path / "m.npz"
        self._save(path)
        raw = path.read_bytes()
        for name, content in [
            ("trunc.npz", raw[:-40]),
            ("garbage.npz", b"\x00" * 100),
            ("empty.npz", b""),
        ]:
            target = tmp_path / name
            target.write_bytes(content)
            with pytest.raises(ModelFileError):
                load_arrays(target)
        archive = tmp_path / "plain.zip"
        with zipfile.ZipFile(archive, "w") as z:
            z.writestr("hello.txt", "hi")
        with pytest.raises(ModelFileError):
            load_arrays(archive)


class _Toy(ParamsMixin):
    def __init__(self, *, alpha=0.5, name="x"):
        self.alpha = alpha
        self.name = name


def test_params_mixin():
    toy = _Toy(alpha=0.9)
    assert toy.get_params() == {"alpha": 0.9, "name": "x"}
    assert repr(toy) == "_Toy(alpha=0.9)"
    assert toy.set_params(name="y") is toy and toy.name == "y"
    with pytest.raises(ValueError, match="invalid parameter 'beta'"):
        toy.set_params(beta=1)


def test_import_is_lazy_and_fast():
    code = "import sys, recforge; print('numba' in sys.modules, recforge.__version__)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", recforge.__version__]


def test_unknown_attribute():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        recforge.nope  # noqa: B018


def test_cli_version_and_info():
    version = subprocess.run(
        [sys.executable, "-m", "recforge", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert version.strip() == f"recforge {recforge.__version__}"
    info = subprocess.run(
        [sys.executable, "-m", "recforge", "info"], capture_output=True, text=True, check=True
    ).stdout
    assert "cores available" in info


def test_warmup_compiles_every_kernel_module_with_a_hook():
    import pkgutil

    import recforge.kernels as kernels

    spent = kernels.warmup()
    with_hook = {
        m.name
        for m in pkgutil.iter_modules(kernels.__path__)
        if hasattr(__import__(f"recforge.kernels.{m.name}", fromlist=["_"]), "_warmup")
    }
    assert set(spent) == with_hook | set(kernels.OTHER_KERNEL_MODULES)
    assert {"ranking", "segsort"} <= with_hook


def test_cli_warmup():
    out = subprocess.run(
        [sys.executable, "-m", "recforge", "warmup"],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    assert "ranking" in out and "done in" in out
