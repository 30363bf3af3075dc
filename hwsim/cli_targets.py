"""``hwsim targets list | show NAME|FILE | validate FILE``."""

from __future__ import annotations

import pathlib
import sys

from hwsim.cli import UsageError
from hwsim.targets import OP_TYPES, TargetError, list_targets, load_target, to_yaml


def register(sub) -> None:
    parser = sub.add_parser("targets", help="list, show or validate target profiles",
                            description="Built-in and user target profiles (YAML).")
    actions = parser.add_subparsers(dest="targets_action", metavar="ACTION")
    actions.required = True

    p = actions.add_parser("list", help="the built-in profiles: name, summary, what each is bit-exact to")
    p.set_defaults(func=_list)

    p = actions.add_parser("show", help="a profile fully resolved (bases merged), as YAML")
    p.add_argument("target", metavar="NAME|FILE", help="a built-in name or a profile file")
    p.add_argument("--op", choices=OP_TYPES, help="print what this op type computes instead (overrides applied)")
    p.add_argument("--activation-bits", type=int, metavar="N",
                   help="with --op: the activation width (default: the profile's default, e.g. 8; 16 for 16x8)")
    p.set_defaults(func=_show)

    p = actions.add_parser("validate", help="check a profile file; exit 0 and print 'ok', or exit 2 with the cause")
    p.add_argument("file", metavar="FILE", help="a profile file (.yaml)")
    p.set_defaults(func=_validate)


def _list(args) -> int:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="built-in target profiles")
    table.add_column("name", no_wrap=True, style="bold")
    table.add_column("summary")
    table.add_column("bit-exact to")
    for name in list_targets():
        profile = _load(name)
        table.add_row(name, profile.summary, str(profile.reference) if profile.reference else "-")
    Console(file=sys.stdout).print(table)
    return 0


def _show(args) -> int:
    profile = _load(args.target)
    if args.activation_bits is not None and args.op is None:
        raise UsageError("--activation-bits needs --op")
    if args.op is not None:
        try:
            semantics = profile.for_op(args.op, args.activation_bits)
        except TargetError as exc:
            raise UsageError(str(exc)) from None
        header = f"# {profile.name}: {args.op} with {semantics.activation_bits}-bit activations\n"
        sys.stdout.write(header + to_yaml(semantics.describe()))
        return 0
    chain = " <- ".join(profile.bases[::-1])
    header = f"# {profile.source}" + (f", on top of {chain}" if chain else "") + " (fully resolved)\n"
    sys.stdout.write(header + profile.to_yaml())
    return 0


def _validate(args) -> int:
    _load(pathlib.Path(args.file))
    print("ok")
    return 0


def _load(name_or_path):
    try:
        return load_target(name_or_path)
    except TargetError as exc:
        raise UsageError(str(exc)) from None
