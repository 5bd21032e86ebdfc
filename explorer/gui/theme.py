"""Light and dark themes. "system" follows the desktop's colour scheme (and its changes while running);
"light" / "dark" override it. The map (pyqtgraph) and the few custom colours follow the palette."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

THEMES = ("system", "light", "dark")


def apply_theme(choice: str) -> None:
    app = QApplication.instance()
    if app is None:
        return
    if choice not in THEMES:
        choice = "system"
    # Fusion draws every widget from the palette, so a dark scheme is dark everywhere, on every platform.
    app.setStyle("Fusion")
    hints = QGuiApplication.styleHints()
    if choice == "system":
        hints.unsetColorScheme()
        dark = hints.colorScheme() == Qt.ColorScheme.Dark
    else:
        dark = choice == "dark"
        hints.setColorScheme(Qt.ColorScheme.Dark if dark else Qt.ColorScheme.Light)
    # Some platform themes (and the offscreen one) ignore the scheme: set the palette ourselves.
    app.setPalette(dark_palette() if dark else app.style().standardPalette())


def dark_palette() -> QPalette:
    p = QPalette()
    roles = QPalette.ColorRole
    for role, colour in ((roles.Window, "#2b2d31"), (roles.WindowText, "#e3e3e3"), (roles.Base, "#1e1f22"),
                         (roles.AlternateBase, "#2b2d31"), (roles.Text, "#e3e3e3"), (roles.Button, "#383a40"),
                         (roles.ButtonText, "#e3e3e3"), (roles.Highlight, "#3d7bd9"),
                         (roles.HighlightedText, "#ffffff"), (roles.ToolTipBase, "#383a40"),
                         (roles.ToolTipText, "#e3e3e3"), (roles.PlaceholderText, "#9aa0a6"), (roles.Link, "#8ab4f8"),
                         (roles.Mid, "#4a4d55"), (roles.Dark, "#18191c"), (roles.Light, "#505360")):
        p.setColor(role, QColor(colour))
    for role in (roles.Text, roles.WindowText, roles.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#7a7d85"))
    return p


def is_dark() -> bool:
    app = QApplication.instance()
    if app is None:
        return False
    return app.palette().color(QPalette.ColorRole.Window).lightness() < 128


def muted_css() -> str:
    """Style sheet colour for secondary text that reads on either background."""
    return "color: #9aa0a6" if is_dark() else "color: #555"


def error_css() -> str:
    return "color: #ff6e6e" if is_dark() else "color: #b00020"


__all__ = ["THEMES", "apply_theme", "dark_palette", "is_dark", "muted_css", "error_css"]
