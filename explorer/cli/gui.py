"""``latent-explorer gui [FILES]`` (the default): open the explorer window."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> argparse.ArgumentParser:
    gui = sub.add_parser("gui", help="open the explorer window (the default)")
    gui.add_argument("files", nargs="*", help=".safetensors checkpoints to open")
    return gui


def cmd_gui(args: argparse.Namespace) -> int:
    from explorer.app import main as app_main

    return app_main(list(getattr(args, "files", []) or []))


run = cmd_gui
