"""Install a requirements file into this Python's environment: with uv when it can be had, else pip.

    python -m tools.install -r requirements.txt
    python -m tools.install --no-deps -r requirements-nodeps.txt

The two install the same pinned packages; uv unpacks the 6 GB of torch and its CUDA libraries in
parallel, in well under a minute where pip takes about three (make env on a fresh machine). uv
reads none of pip's settings, so it is handed pip's own (``pip config list``: index URLs,
find-links, constraints) and told to pick from every index as pip does. If uv is not installed,
or fails, pip installs: the environment is the same, only slower to make.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

# pip's setting -> uv's option (each value of a setting may hold several, space-separated)
PIP_TO_UV = {"index-url": "--index-url", "extra-index-url": "--extra-index-url",
             "find-links": "--find-links", "constraint": "--constraint"}


def pip_settings(config_list: str) -> list[str]:
    """uv's options for the settings in ``pip config list``'s output (lines ``scope.name='value'``)."""
    pairs = {}  # a setting given in several scopes (the environment, pip.conf) is passed once
    for line in config_list.splitlines():
        key, _, value = line.partition("=")
        option = PIP_TO_UV.get(key.rpartition(".")[2])
        if option and value:
            pairs.update(dict.fromkeys((option, item) for item in shlex.split(value)[0].split()))
    return [part for pair in pairs for part in pair]


def uv_command(args: list[str]) -> list[str] | None:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        return None
    config = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                            text=True).stdout
    return [uv, "pip", "install", "--quiet", "--python", sys.executable,
            "--index-strategy", "unsafe-best-match", *pip_settings(config), *args]


def _requirements_problem(path: str) -> str | None:
    """Why ``path`` is not a requirements file to read (missing, a folder, unreadable), or None:
    checked here, so that neither uv nor pip is started on it and blamed."""
    if "://" in path:  # pip reads a URL too: left to it
        return None
    if os.path.isdir(path):
        return "a folder, not a file"
    try:
        with open(path, "rb"):
            return None
    except FileNotFoundError:
        return "no such file"
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-deps", action="store_true", help="install the packages named, nothing else")
    parser.add_argument("-r", dest="requirements", required=True, help="the requirements file")
    args = parser.parse_args(argv)
    problem = _requirements_problem(args.requirements)
    if problem:
        parser.error(f"-r {args.requirements}: {problem}; give requirements.txt or "
                     "requirements-nodeps.txt (nothing was installed)")
    packages = (["--no-deps"] if args.no_deps else []) + ["-r", args.requirements]
    uv = uv_command(packages)
    if uv and subprocess.run(uv).returncode == 0:
        return 0
    if uv:
        print(f"uv could not install {args.requirements}; pip installs it instead", flush=True)
    return subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *packages]).returncode


if __name__ == "__main__":
    sys.exit(main())
