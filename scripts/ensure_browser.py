"""Install headless Chromium for the book's browser check when it is missing (Debian, as root).

`make test` runs this first. Where Chromium cannot be installed (no apt, not root, no
registry), it says so and exits 0: tests/test_browser.py then skips, printing the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    override = os.environ.get("FINEFCACE_CHROMIUM")
    if override:
        return override if os.path.exists(override) else None
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def main() -> int:
    if find_chromium():
        return 0
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        print("[browser] Chromium is missing and cannot be installed here (needs apt-get as root); "
              "the browser check will be skipped", file=sys.stderr)
        return 0
    print("[browser] installing Debian's chromium for the book's browser check ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        result = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            print(f"[browser] `{' '.join(command)}` failed: {result.stderr.strip()[-500:]}; "
                  "the browser check will be skipped", file=sys.stderr)
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
