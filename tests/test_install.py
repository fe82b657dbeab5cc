"""Specification of tools/install.py, which make env uses to install the requirements."""

from __future__ import annotations

import sys

from tools.install import pip_settings


def test_pips_indexes_find_links_and_constraints_are_handed_to_uv_once_each():
    config = "\n".join([
        ":env:.find-links='/opt/wheels'",
        ":env:.default-timeout='180'",
        "global.cert='/etc/ssl/certs/ca-certificates.crt'",
        "global.constraint='/etc/xdg/pip/constraints.txt'",
        "global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'",
        "global.find-links='/opt/wheels'",
        "user.index-url='https://mirror.example/simple'",
    ])
    assert pip_settings(config) == [
        "--find-links", "/opt/wheels",
        "--constraint", "/etc/xdg/pip/constraints.txt",
        "--extra-index-url", "file:///opt/pypi/simple",
        "--extra-index-url", "file:///opt/pypi-more/simple",
        "--index-url", "https://mirror.example/simple",
    ]


def test_no_pip_settings_give_no_options():
    assert pip_settings("") == []


# --- which Python make env accepts (tools/python_version.py) ------------------------------

def test_make_env_accepts_the_tested_pythons_and_stops_on_others_saying_how_to_fix_it():
    from tools.python_version import TESTED, check

    for version in TESTED:
        assert check(version) == (0, "")
    status, message = check((3, 10, 14))
    assert status == 1
    assert message.startswith("error: Python 3.10 (") and "3.11, 3.12, 3.13" in message
    assert "make env PYTHON=python3.12" in message and "ALLOW_UNTESTED_PYTHON=1" in message
    status, message = check((3, 14, 0), allow_untested=True)
    assert status == 0 and message.startswith("warning: Python 3.14 (")


def test_make_env_runs_the_check_with_the_python_it_is_given(tmp_path):
    """`make env PYTHON=...` on an untested version stops before making .venv."""
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    fake = tmp_path / "python3.10"  # a Python that reports version 3.10
    fake.write_text(f"#!/bin/sh\nexec {sys.executable} -c \"import sys, runpy; "
                    "sys.version_info = (3, 10, 0); sys.argv = sys.argv[1:]; "
                    "runpy.run_path(sys.argv[0], run_name='__main__')\" \"$@\"\n")
    fake.chmod(0o755)
    result = subprocess.run(["make", "--no-print-directory", "-C", str(repo),
                             "-f", "Makefile", f"PYTHON={fake}", f"VENV={tmp_path / 'venv'}",
                             f"{tmp_path / 'venv'}/.installed"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "error: Python 3.10 (" in result.stderr and "is not one the book is tested with" in result.stderr
    assert not (tmp_path / "venv").exists()
