"""Exceptions raised by recforge."""


class NotFittedError(ValueError, AttributeError):
    """A model was used before ``fit`` (subclass of ValueError and AttributeError, like scikit-learn's)."""


class ModelFileError(ValueError):
    """A model file is corrupt, truncated, of another model class or from an unsupported format version."""
