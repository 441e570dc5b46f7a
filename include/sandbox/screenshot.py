"""Render an HTML file to PNG with headless Chromium (to look at the report as a person would).

Usage: ``python -m include.sandbox.screenshot <html> <png> [--width 1200]
[--height 2400]``. Needs a ``chromium`` binary (Debian: ``apt-get install -y chromium``); set
``CHROMIUM_BIN`` to use another one. Exit codes: 0 written, 2 no browser, 1 browser failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


# Headless Chromium on a machine whose network is closed: without the background-networking
# flags it keeps trying (and failing) to reach Google's hosts.
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class ChromiumNotFound(RuntimeError):
    pass


def find_chromium() -> str | None:
    explicit = os.environ.get("CHROMIUM_BIN")
    if explicit:
        return explicit if shutil.which(explicit) or Path(explicit).is_file() else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(
    html: str | os.PathLike[str],
    png: str | os.PathLike[str],
    *,
    width: int = 1200,
    height: int = 2400,
    timeout: float = 120.0,
) -> Path:
    """Write a ``width``×``height`` screenshot of ``html`` to ``png``; returns the PNG path."""
    browser = find_chromium()
    if browser is None:
        raise ChromiumNotFound("no chromium binary found (apt-get install -y chromium)")
    html_path, png_path = Path(html).resolve(), Path(png).resolve()
    if not html_path.is_file():
        raise FileNotFoundError(html_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    png_path.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="aops-chromium-") as profile:
        args = [
            browser,
            "--headless",
            *CHROMIUM_FLAGS,
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--screenshot={png_path}",
            f"--window-size={width},{height}",
            html_path.as_uri(),
        ]
        result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if not png_path.is_file() or png_path.stat().st_size == 0:
        raise RuntimeError(
            f"chromium exited {result.returncode} without writing {png_path}:\n"
            f"{result.stderr[-2000:]}"
        )
    return png_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html")
    parser.add_argument("png")
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=2400)
    args = parser.parse_args(argv)
    try:
        path = screenshot(args.html, args.png, width=args.width, height=args.height)
    except ChromiumNotFound as exc:
        print(f"screenshot: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, FileNotFoundError, subprocess.TimeoutExpired) as exc:
        print(f"screenshot failed: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
