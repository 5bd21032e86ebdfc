"""Entry point of the PyInstaller bundle: the same CLI as ``latent-explorer``.

``freeze_support`` first: t-SNE and UMAP run in a child process started with "spawn", which in a frozen
app re-runs this executable; freeze_support turns that run into the child instead of a second window.
``--bundle-check`` (alone) runs packaging/bundle_check.py instead of the CLI: see packaging/smoke.sh.
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    if sys.argv[1:] == ["--bundle-check"]:
        from bundle_check import run

        sys.exit(run())
    from explorer.cli import main

    sys.exit(main())
