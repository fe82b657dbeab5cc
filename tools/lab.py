"""Open the chapters in JupyterLab, in this environment: ``make lab``.

    python -m tools.lab                      # what make lab runs
    python -m tools.lab --port 8890 --ip 0.0.0.0   # other arguments go to JupyterLab

JupyterLab refuses to start as root unless told ``--allow-root``; in a container root is the
usual user, so the option is passed for root only, and the command says so. Where there is no
display (a server, a container, a terminal over ssh) it does not try to open a browser, and
says to open the URL that JupyterLab prints.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # lenet_book from this checkout, installed or not
from lenet_book.book import ROOT  # noqa: E402


def has_display(platform: str = sys.platform, environ=os.environ) -> bool:
    """Whether a browser could open here: always on macOS and Windows; on Linux and other Unix
    systems only with an X11 or Wayland display."""
    if platform == "darwin" or platform.startswith("win"):
        return True
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


def lab_command(python: str, *, as_root: bool, display: bool, extra: list[str]) -> list[str]:
    """JupyterLab's command line, serving the chapters folder (notebooks/)."""
    return [python, "-m", "jupyterlab", f"--ServerApp.root_dir={ROOT / 'notebooks'}",
            *(["--allow-root"] if as_root else []), *([] if display else ["--no-browser"]),
            *extra]


def main(argv: list[str] | None = None) -> int:
    extra = sys.argv[1:] if argv is None else argv
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    display = has_display()
    command = lab_command(sys.executable, as_root=as_root, display=display, extra=extra)
    if as_root:
        print("Running as root (as in most containers): JupyterLab gets --allow-root.")
    if not display:
        print("No display here: no browser opens. Open the URL that JupyterLab prints below\n"
              "(http://localhost:8888/lab?token=...; in a container, publish the port and\n"
              "start with: make lab LAB_ARGS='--ip=0.0.0.0').")
    print("Chapters:", ROOT / "notebooks", "\nStop with Ctrl-C.", flush=True)
    os.execv(sys.executable, command)  # JupyterLab takes over this process (and Ctrl-C)
    return 0


if __name__ == "__main__":
    sys.exit(main())
