"""A running `parley studio` on the demo model, and a headless chromium to drive its page."""
from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def studio(demo_model, tmp_path):
    """(page address, profiles folder): the studio in a process of its own, on a copy of npc_profiles."""
    folder = tmp_path / "profiles"
    shutil.copytree(ROOT / "npc_profiles", folder)
    log = tmp_path / "studio.log"  # a file, not a pipe nobody reads: a chatty studio must never block on it
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "runtime.cli", "studio", "--model", str(demo_model),
                                 "--profiles", str(folder), "--port", "0"], stdout=subprocess.PIPE, stderr=err,
                                text=True, cwd=tmp_path)
    ready, _, _ = select.select([proc.stdout], [], [], 120)
    line = proc.stdout.readline() if ready else ""
    if "Parley Studio on http://127.0.0.1:" not in line:
        proc.kill()
        pytest.fail(f"the studio did not start: {line!r}\n{log.read_text()}")
    yield line.split()[3], folder
    proc.terminate()
    assert proc.wait(20) == 0, log.read_text()


def _chromium() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.fixture
def browser():
    """Debian's chromium, headless, through chromedriver (CI installs both: .ci/run)."""
    found = _chromium()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver are missing (.ci/run installs them)")
        pytest.skip("needs Debian's chromium and chromium-driver packages")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(found[1]), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()
