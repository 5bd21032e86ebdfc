"""Change notifications without Qt: a tiny signal that calls plain callbacks.

The explorer state emits these; GUI controllers and views connect to them (a Qt view then updates itself on the
GUI thread, where every state change happens). Named in pyqtgraph's manner: ``cursorChanged``, ``modelsChanged``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any


class Event:
    """``connect(fn)``, ``disconnect(fn)``, ``emit(*args)``. Bound methods are held weakly, so a closed view
    that forgot to disconnect is still freed (and silently dropped from the list)."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._slots: list[Any] = []
        self._blocked = 0

    def connect(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        ref = weakref.WeakMethod(fn) if hasattr(fn, "__self__") and hasattr(fn, "__func__") else None
        self._slots.append(ref if ref is not None else fn)
        return fn

    def disconnect(self, fn: Callable[..., Any] | None = None) -> None:
        if fn is None:
            self._slots.clear()
            return
        self._slots = [s for s in self._slots if self._resolve(s) not in (fn, None)]

    @staticmethod
    def _resolve(slot: Any) -> Callable[..., Any] | None:
        return slot() if isinstance(slot, weakref.WeakMethod) else slot

    def emit(self, *args: Any) -> None:
        if self._blocked:
            return
        dead = False
        for slot in list(self._slots):
            fn = self._resolve(slot)
            if fn is None:
                dead = True
                continue
            fn(*args)
        if dead:
            self._slots = [s for s in self._slots if self._resolve(s) is not None]

    def __len__(self) -> int:
        return sum(1 for s in self._slots if self._resolve(s) is not None)

    class _Blocker:
        def __init__(self, event: "Event") -> None:
            self.event = event

        def __enter__(self) -> None:
            self.event._blocked += 1

        def __exit__(self, *exc: Any) -> None:
            self.event._blocked -= 1

    def blocked(self) -> "Event._Blocker":
        """``with state.cursorChanged.blocked(): ...`` changes without telling anyone."""
        return Event._Blocker(self)


__all__ = ["Event"]
