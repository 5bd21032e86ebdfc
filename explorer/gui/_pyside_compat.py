"""Work around a reference-count bug of PySide6 6.12 on CPython 3.11.

PySide6 6.12.0 returns ``None`` from void methods (``QLabel.setText``,
``QWidget.setEnabled``, ``QCoreApplication.processEvents``, ...) and ``True``
from ``SignalInstance.emit`` without taking a reference. On CPython 3.12+ those
objects are immortal and nothing happens; on 3.11 every such call takes one
reference away for good, and once the count reaches zero the interpreter aborts
("Fatal Python error: none_dealloc: deallocating None" / "bool_dealloc"). A GUI
makes thousands of such calls a minute: the training panel crashed the process
after a few runs.

The remedy is what CPython 3.12 does itself: give the few singletons a reference
count so large that no run can exhaust it (``2**40`` calls). Nothing is freed or
moved; the only cost is that these objects, which are never freed anyway, carry
a big number. Applied only where needed (CPython < 3.12 and a PySide6 that
shows the leak), checked by measuring it, never by version number alone.
"""

from __future__ import annotations

import ctypes
import sys

_TOP_UP = 2**40
_applied = False


def _leaks() -> bool:
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()
    n = 64
    before_true, before_none = sys.getrefcount(True), sys.getrefcount(None)
    for _ in range(n):
        probe.ping.emit()
        probe.blockSignals(False)
    lost = (before_true - sys.getrefcount(True)) + (before_none - sys.getrefcount(None))
    return lost >= n // 2


def protect_singletons() -> bool:
    """Apply the remedy if this interpreter and PySide6 need it. Returns whether it was applied."""
    global _applied
    if _applied:
        return True
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return False
    if not _leaks():
        return False
    for obj in (None, True, False, Ellipsis, NotImplemented):
        # ob_refcnt is the first field of every object in a release build of CPython 3.11.
        ctypes.c_ssize_t.from_address(id(obj)).value += _TOP_UP
    _applied = True
    return True
