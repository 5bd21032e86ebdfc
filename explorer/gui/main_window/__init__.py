"""The explorer window, in parts: ``window`` (docks, wiring, state -> views), ``map_tools`` (manifold, search,
neighbours, colouring), ``menus`` (menus, shortcuts, recent files, drag and drop), ``files`` (opening, trust,
sessions, layout and shutdown), ``common`` (constants and helpers)."""

from explorer.core.checkpoint import CheckpointError

from ..controllers.data import file_identity
from .common import (
           DEMO_MODELS,
           FACES_DEMO,
           RESOURCES,
           about_text,
           fit_to_screen,
           scrolled,
)
from .window import MainWindow

__all__ = ["CheckpointError", "DEMO_MODELS", "FACES_DEMO", "MainWindow", "RESOURCES", "about_text", "file_identity",
           "fit_to_screen", "scrolled"]
