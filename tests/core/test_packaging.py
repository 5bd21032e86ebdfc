"""The desktop integration files are well-formed and agree with each other."""

import configparser
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP_ID = "io.github.latent_explorer.LatentExplorer"


def test_desktop_file_and_appstream_metadata_agree():
    desktop = configparser.ConfigParser(interpolation=None)
    desktop.optionxform = str
    desktop.read(ROOT / "packaging" / f"{APP_ID}.desktop")
    entry = desktop["Desktop Entry"]
    assert entry["Type"] == "Application" and entry["Exec"].split()[0] == "latent-explorer"
    assert entry["Icon"] == APP_ID and entry["Categories"].endswith(";")
    meta = ET.parse(ROOT / "packaging" / f"{APP_ID}.metainfo.xml").getroot()
    assert meta.findtext("id") == APP_ID
    assert meta.find("launchable").text == f"{APP_ID}.desktop"
    from explorer import __version__

    assert meta.find("releases/release").get("version") == __version__
    assert (ROOT / "resources" / "icons" / "latent-explorer.png").exists()


def test_pyinstaller_spec_names_an_entry_point_that_exists():
    spec = (ROOT / "packaging" / "latent-explorer.spec").read_text()
    assert '"entry.py"' in spec
    entry = (ROOT / "packaging" / "entry.py").read_text()
    assert "freeze_support()" in entry  # the projection child process needs it in a frozen app
    compile(entry, "entry.py", "exec")


def test_bundle_scripts_parse():
    import subprocess

    compile((ROOT / "packaging" / "bundle_check.py").read_text(), "bundle_check.py", "exec")
    assert '"bundle_check"' in (ROOT / "packaging" / "latent-explorer.spec").read_text()  # entry.py imports it
    for script in ("build.sh", "smoke.sh"):
        subprocess.run(["bash", "-n", str(ROOT / "packaging" / script)], check=True)
