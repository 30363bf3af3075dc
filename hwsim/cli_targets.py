"""`hwsim targets` (STUB: to be written)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("targets", help="(not yet implemented)")
    p.set_defaults(func=lambda args: 2)
