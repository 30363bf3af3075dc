"""Errors raised while reading a model file."""

from __future__ import annotations

__all__ = ["ModelError"]


class ModelError(ValueError):
    """A model file hwsim cannot read: unsupported op, corrupt or truncated file, inconsistent graph.

    The message names the file and, where there is one, the node (its type and name).
    """
