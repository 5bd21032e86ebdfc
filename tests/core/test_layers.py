import subprocess
import sys


def test_core_import_loads_no_qt():
    code = (
        "import sys, explorer, explorer.core, explorer.core.training, explorer.core.data, explorer.cli;"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('PySide6','pyqtgraph','shiboken6')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_import_contracts_hold():
    """The layer rules in pyproject.toml's [tool.importlinter]: core free of Qt/GUI/CLI, window > views >
    controllers, no CLI command importing another, the model registry a leaf, models free of training."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    exe = Path(sys.executable).with_name("lint-imports")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "importlinter.cli"]
    proc = subprocess.run(cmd + ["--no-cache"], cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout
