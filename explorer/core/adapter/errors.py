"""The adapter's error types (both are :class:`CheckpointError`, the one type code opening checkpoints catches)."""

from __future__ import annotations

from typing import Any

from ..checkpoint import CheckpointError


class AdapterError(CheckpointError):
    """A user's model could not be imported or rebuilt. ``str(err)`` is a user-facing message."""


class UntrustedCodeError(AdapterError):
    """Rebuilding the model would run code at ``path`` that this user has not trusted (or not in this version,
    or not with these constructor arguments). :func:`explorer.core.adapter.trust_question` turns it into the
    question to ask; :func:`explorer.core.adapter.trust_code` records the answer.

    ``reason``: "new" (never trusted), "changed" (trusted, but the file's sha256 differs now; ``changes`` says
    what changed), "call" (the file is trusted, but not with this class / these arguments), "legacy" (trusted
    by an earlier version that kept no fingerprint). ``call``: what would run, ``{"class", "kwargs",
    "script_args"}``; ``fingerprint``: the file's current sha256, size and modification time.
    """

    def __init__(self, message: str, path: str, *, what: str = "Python file", reason: str = "new",
                 changes: list[str] | None = None, call: dict[str, Any] | None = None,
                 fingerprint: dict[str, Any] | None = None):
        super().__init__(message)
        self.path = path
        self.what = what
        self.reason = reason
        self.changes = list(changes or [])
        self.call = dict(call or {})
        self.fingerprint = dict(fingerprint or {})
