"""Errors raised while reading a model file into the graph IR."""


class ModelError(ValueError):
    """A model file hwsim cannot import: unreadable, corrupt or truncated, or using an unsupported op.

    The message names the file and, for an op, its type, its index / name and the supported ops.
    """
