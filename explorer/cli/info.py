"""``latent-explorer info FILE``: a checkpoint's metadata as JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .args import CLIError


def add_parser(sub: Any) -> argparse.ArgumentParser:
    info = sub.add_parser("info", help="print a checkpoint's metadata as JSON")
    info.add_argument("file")
    return info


def cmd_info(args: argparse.Namespace) -> int:
    from explorer.core.checkpoint import CheckpointError, inspect

    try:
        doc = inspect(args.file)
    except CheckpointError as exc:
        raise CLIError(str(exc)) from exc
    print(json.dumps(doc, indent=2))
    return 0


run = cmd_info
