"""scikit-learn style hyper-parameter handling without depending on scikit-learn."""

from __future__ import annotations

import inspect


class ParamsMixin:
    """``get_params``/``set_params``/``__repr__`` from the keyword arguments of ``__init__``.

    ``__init__`` must only store each argument under its own name.
    """

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return sorted(
            name
            for name, p in signature.parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        )

    def get_params(self, deep: bool = True) -> dict:
        """Hyper-parameters as a dict (``deep`` is accepted for scikit-learn compatibility)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set hyper-parameters; unknown names raise ``ValueError``. Returns ``self``."""
        valid = set(self._param_names())
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"invalid parameter {name!r} for {type(self).__name__}; valid: {sorted(valid)}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            name: p.default for name, p in inspect.signature(type(self).__init__).parameters.items()
        }
        changed = [
            f"{name}={value!r}"
            for name, value in self.get_params().items()
            if not (defaults.get(name) is value or _equal(defaults.get(name), value))
        ]
        return f"{type(self).__name__}({', '.join(changed)})"


def keyword_init(defaults: dict):
    """An ``__init__`` taking exactly the keyword-only arguments ``defaults`` (name -> default, in
    signature order) and storing each under its own name, with that signature for
    ``inspect.signature`` (:class:`ParamsMixin`, scikit-learn, ``help``): one home for the parameter
    list of estimators that share it.

    >>> class Model(ParamsMixin):
    ...     __init__ = keyword_init({"alpha": 1.0, "n_threads": None})
    >>> Model(alpha=2.0)
    Model(alpha=2.0)
    >>> Model(beta=1)
    Traceback (most recent call last):
    ...
    TypeError: Model() got an unexpected keyword argument 'beta'
    """
    defaults = dict(defaults)

    def __init__(self, **params):
        for name in params:
            if name not in defaults:
                raise TypeError(
                    f"{type(self).__name__}() got an unexpected keyword argument {name!r}"
                )
        for name, default in defaults.items():
            setattr(self, name, params.get(name, default))

    __init__.__signature__ = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
            for name, default in defaults.items()
        ]
    )
    return __init__


def _equal(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return False
