"""Start the real application (offscreen) with the bundled demo and save a screenshot."""

import os
import subprocess
import sys

from PIL import Image


def test_app_starts_with_demo_and_draws_a_map(tmp_path):
    shot = tmp_path / "screenshot.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "LATENT_EXPLORER_SCREENSHOT": str(shot),
           "LATENT_EXPLORER_QUIT_AFTER_MS": "240000", "XDG_CONFIG_HOME": str(tmp_path / "config")}
    proc = subprocess.run([sys.executable, "-m", "explorer"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert shot.exists(), "the map never became ready: " + proc.stderr[-2000:]
    img = Image.open(shot).convert("RGB")
    assert img.width >= 800 and img.height >= 500
    colours = img.resize((200, 120)).getcolors(maxcolors=100_000)
    assert colours is not None and len(colours) > 50, "screenshot looks blank"
