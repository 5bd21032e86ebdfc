"""Constants and small helpers of the window, shared by its parts."""


from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFrame, QScrollArea, QWidget

from explorer.core.explore import OpenModel

from ..controllers import dropped as dropped_module
from ..controllers.data import strip_exception

RESOURCES = Path(__file__).resolve().parents[3] / "resources"
DEMO_MODELS = [RESOURCES / "demo" / "mnist-vae.safetensors", RESOURCES / "demo" / "mnist-ae.safetensors"]
FACES_DEMO = RESOURCES / "demo" / "faces-vae.safetensors"
MAX_RECENT = 10
SLIDER_REFRESH_MS = 30
PROJECTIONS = [("PCA", "pca"), ("t-SNE", "tsne"), ("UMAP", "umap"), ("Two latent dimensions", "dims")]
INVERT_OPTIONS = dropped_module.INVERT_OPTIONS
DEFAULT_SIZE = (1400, 880)
RECON_ERROR = "reconstruction error"
POSTERIOR_SPREAD = "posterior spread (VAE)"
COLOUR_BINS = 12
# Kept for callers of the first version.
ModelEntry = OpenModel
_strip_exception = strip_exception


def scrolled(widget: QWidget) -> QScrollArea:
    """``widget`` in a frameless scroll area that it fills: a panel's minimum size then scrolls instead of
    adding up with the others into a window too large for a laptop screen."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setWidget(widget)
    return area


def fit_to_screen(widget: QWidget, wanted: tuple[int, int] = DEFAULT_SIZE) -> tuple[int, int]:
    """Resize ``widget`` to ``wanted`` or, on a smaller screen, to what its screen has available."""
    screen = widget.screen() or (widget.window().windowHandle().screen() if widget.window().windowHandle() else None)
    w, h = wanted
    if screen is not None:
        avail = screen.availableGeometry()
        # Leave room for the window frame and title bar, which availableGeometry does not include.
        w, h = min(w, max(640, avail.width() - 16)), min(h, max(480, avail.height() - 40))
        widget.resize(w, h)
        widget.move(avail.x() + max(0, (avail.width() - w) // 2), avail.y() + max(0, (avail.height() - h) // 3))
    else:
        widget.resize(w, h)
    return w, h


def _droppable(path: str) -> bool:
    from explorer.core.data.folder import IMAGE_EXTENSIONS

    p = Path(path)
    return p.suffix in (".safetensors", ".lexsession") or p.suffix.lower() in IMAGE_EXTENSIONS or p.is_dir()



def about_text() -> str:
    import platform

    import pyqtgraph
    import PySide6
    import torch

    from explorer import __version__

    return (
        f"<h3>Latent Explorer {__version__}</h3>"
        "<p>Explore the latent spaces of autoencoders, VAEs and GANs: a decodable 2-D map, vector "
        "arithmetic, interpolation, comparison and training.</p>"
        f"<p>Python {platform.python_version()} · PySide6 {PySide6.__version__} · "
        f"pyqtgraph {pyqtgraph.__version__} · torch {torch.__version__}</p>"
        "<p><b>Data licences.</b> MNIST: Yann LeCun and Corinna Cortes, CC BY-SA 3.0. Fashion-MNIST: "
        "Zalando Research, MIT. Digits (scikit-learn): UCI ML repository, CC BY 4.0. The procedural faces "
        "are drawn by this program. CelebA and your own folders: the licence of their owners.</p>"
    )






