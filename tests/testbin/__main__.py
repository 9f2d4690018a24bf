"""`python tests/testbin build [NAME ...]` builds (or reuses) the tests' real binaries; see __init__.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import testbin


def main() -> int:
    parser = argparse.ArgumentParser(prog="python tests/testbin", description=testbin.__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build or reuse tools (all when none is named)")
    build.add_argument("names", nargs="*", metavar="NAME", help="tool keys from `list`, e.g. helm-v3.19.5")
    sub.add_parser("list", help="each tool, its binaries and whether the cache holds a valid build")
    path = sub.add_parser("path", help="print a binary's path (builds it when absent)")
    path.add_argument("binary")
    path.add_argument("version", nargs="?")
    args = parser.parse_args()

    if args.command == "list":
        for key, tool in testbin.TOOLS.items():
            state = "built" if testbin.cached(tool) else "not built"
            print(f"{key:32} {state:10} {' '.join(tool.binaries)}")
        return 0
    if args.command == "path":
        print(testbin.binary(args.binary, args.version))
        return 0
    unknown = [name for name in args.names if name not in testbin.TOOLS]
    if unknown:
        parser.error(f"unknown tool(s) {', '.join(unknown)}; known: {', '.join(testbin.TOOLS)}")
    for key in args.names or list(testbin.TOOLS):
        try:
            folder = testbin.ensure(testbin.TOOLS[key])
        except testbin.BuildError as error:
            print(f"testbin: {error}", file=sys.stderr)
            return 1
        print(f"{key}: {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
