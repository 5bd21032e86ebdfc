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
