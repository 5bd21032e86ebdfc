"""Console entry point: ``latent-explorer`` launches the GUI; subcommands run headless.

One module per command (``train``, ``info``, ``gui``, ``export``, ``compare``, ``import_``, ``swap``, ...), each
with ``add_parser(subparsers)`` and ``run(args) -> int``; shared argument types live in :mod:`explorer.cli.args`.
Command modules import only from ``args`` and the core, never from each other.

Errors print one line to stderr and exit non-zero; ``--debug`` shows the traceback. Commands that produce results
print a final JSON line on stdout.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from .args import EXIT_ERROR, EXIT_USAGE, CLIError, Parser

# Command name -> module under explorer.cli. Modules are imported when the parser is built (argparse needs every
# sub-parser), but each imports torch and friends only inside its run().
COMMAND_MODULES: dict[str, str] = {
    "gui": "gui",
    "train": "train",
    "info": "info",
    "export": "export",
    "compare": "compare",
    "import": "import_",
    "swap": "swap",
    "complete": "complete",
    "compress": "compress",
    "pretrain-eval": "pretrain_eval",
}
COMMANDS = tuple(COMMAND_MODULES)


def _module(command: str):
    return importlib.import_module(f"explorer.cli.{COMMAND_MODULES[command]}")


def build_parser() -> argparse.ArgumentParser:
    from explorer import __version__

    parser = Parser(prog="latent-explorer", description="Explore, train and compare latent spaces.")
    parser.add_argument("--version", action="version", version=f"latent-explorer {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    for command in COMMAND_MODULES:
        _module(command).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        parser = build_parser()
        # A bare list of files opens them in the GUI: `latent-explorer a.safetensors`.
        if argv and argv[0] not in COMMANDS and (argv[0].endswith(".safetensors") or os.path.isfile(argv[0])):
            argv = ["gui", *argv]
        args, extra = parser.parse_known_args(argv)
        # argparse fills a trailing `nargs="*"` positional only before the first option; image files
        # given after the options (`swap apply A B --out x.png img1 img2`) belong to it all the same.
        late = getattr(args, "late_positionals", None)
        if extra and late and not any(a.startswith("-") for a in extra):
            setattr(args, late, [*getattr(args, late), *extra])
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        command = args.command or "gui"
        return _module(command).run(args)
    except CLIError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # anything unexpected still gets one readable line
        if debug:
            raise
        print(f"error: {type(exc).__name__}: {exc} (run with --debug for details)", file=sys.stderr)
        return EXIT_ERROR


__all__ = ["COMMANDS", "CLIError", "EXIT_ERROR", "EXIT_USAGE", "build_parser", "main"]
