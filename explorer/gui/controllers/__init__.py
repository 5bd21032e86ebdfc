"""Controllers: own the workers and tasks, turn user intents into state changes (Qt, no widgets).

``explorer`` (the facade tool panels get), ``data`` (opening, encoding), ``projection``, ``cursor`` (the drag
path), ``datum`` (hover/selection reconstructions), ``samples``, ``dropped`` (your own images),
``training_link``, ``tasks`` (latest-wins worker and background tasks).
"""
