import os
import tempfile

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Cached maps go to a throwaway folder, never to the user's cache.
os.environ["LATENT_EXPLORER_CACHE"] = tempfile.mkdtemp(prefix="latent-explorer-test-cache-")
# Trusted model code (imported checkpoints) is remembered per user: tests use a throwaway folder.
os.environ["LATENT_EXPLORER_CONFIG"] = tempfile.mkdtemp(prefix="latent-explorer-test-config-")


@pytest.fixture(scope="session")
def digits():
    from explorer.core.data import load_dataset

    return load_dataset("digits")
