"""The ``hwsim`` command.

Each command group lives in its own module and registers itself here through
``register(subparsers)``.  Exit status: 0 success, 1 a check failed, 2 bad
usage or bad input (with a message naming the file, key or tensor).
"""

from __future__ import annotations

import argparse
import sys

from hwsim import __version__


class UsageError(Exception):
    """Bad usage or bad input: printed without a traceback, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    from hwsim import (cli_demo, cli_diff, cli_fixtures, cli_format, cli_quantize, cli_report, cli_run,
                       cli_targets)

    parser = argparse.ArgumentParser(prog="hwsim", description="Bit-accurate quantized inference on target profiles.")
    parser.add_argument("--version", action="version", version=f"hwsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in (cli_demo, cli_run, cli_quantize, cli_report, cli_diff, cli_fixtures, cli_targets, cli_format):
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"hwsim: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
