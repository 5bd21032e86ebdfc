import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def digits():
    from explorer.core.data import load_dataset

    return load_dataset("digits")
