"""Latent Explorer. Importing this package must stay cheap and Qt-free."""

import os as _os

# OpenMP threads sleep at barriers instead of spinning: spinning teams beside any other busy process (or each
# other) ran training 36x slower. libgomp reads this once, when torch loads it, so it is set here, before any
# explorer module imports torch; child processes inherit it. See explorer/core/threads.py.
if _os.environ.get("LATENT_EXPLORER_OMP_WAIT", "passive").strip().lower() != "default":
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
