"""The training panel: train a model in a background QThread and watch it learn.

Public API (see each class for the payloads):

* :class:`TrainingPanel` - the widget; signals ``modelSnapshot(ModelSnapshot)``, ``trainingFinished(dict)``;
  ``request_close() -> bool`` for the window's close event.
* :class:`TrainingWorker` / :class:`TrainingJob` - the worker on its QThread, usable without the panel.
* :class:`TrainingSpec` - what to train (the panel's form as data).
* :class:`~explorer.core.training.snapshot.ModelSnapshot` - weights handed over at epoch ends.
"""

from explorer.core.training.snapshot import ModelSnapshot

from .spec import FAMILIES, TrainingSpec
from .worker import TrainingJob, TrainingWorker

__all__ = ["FAMILIES", "ModelSnapshot", "TrainingJob", "TrainingPanel", "TrainingSpec", "TrainingWorker"]


def __getattr__(name: str):
    # The panel pulls in pyqtgraph; import it only when asked for.
    if name == "TrainingPanel":
        from .panel import TrainingPanel

        return TrainingPanel
    raise AttributeError(name)
