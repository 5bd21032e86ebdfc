"""The Qt layer. The only package that imports PySide6 / pyqtgraph."""

from ._pyside_compat import protect_singletons

# Before any widget exists: PySide6 6.12 on CPython 3.11 leaks references to None/True on
# every void call and signal emit until the interpreter aborts (see _pyside_compat).
protect_singletons()
