"""The ``tastemaker`` command line."""

from __future__ import annotations

import argparse
import sys


def _build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="tastemaker", description=__doc__)
    parser.add_argument("--version", action="version", version=f"tastemaker {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("show-config", help="print version, SIMD path and threads")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "show-config":
        from . import show_config

        show_config()
        return 0
    parser.print_help(sys.stderr)
    return 2
