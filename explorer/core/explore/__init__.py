"""The explorer state: what the user is looking at, Qt-free, with change events (see :mod:`.state`)."""

from .events import Event
from .session import apply_model_state, to_session, view_choice
from .state import DroppedImages, ExplorerState, OpenModel, ProjectionChoice

__all__ = ["DroppedImages", "Event", "ExplorerState", "OpenModel", "ProjectionChoice", "apply_model_state",
           "to_session", "view_choice"]
