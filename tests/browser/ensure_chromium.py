"""Make sure a Chromium for the browser tests is on this machine, or say how to get one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

path = os.environ.get("TAWASUL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if os.path.exists(path):
    sys.exit(0)
if os.geteuid() == 0 and shutil.which("apt-get"):
    print("Installing Chromium for the browser tests (apt-get install chromium)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env)
    sys.exit(0)
sys.exit(
    "The browser tests need Chromium: install it (Debian/Ubuntu: sudo apt-get install chromium) "
    "or set TAWASUL_CHROMIUM to its path."
)
