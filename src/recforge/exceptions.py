"""Exceptions and warnings raised by recforge (one home for each class)."""


class NotFittedError(ValueError, AttributeError):
    """A model was used before ``fit`` (subclass of ValueError and AttributeError, like scikit-learn's)."""


class ModelFileError(ValueError):
    """A model file is corrupt, truncated, of another model class or from an unsupported format version."""


class ConvergenceWarning(UserWarning):
    """An iterative solver stopped at ``max_iter`` before reaching ``tol``."""
