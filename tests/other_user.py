"""Running a check as another user: root reads every file, so permission checks drop to nobody.

Used by the permission tests of tests/test_data.py and tests/test_checkpoint.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOBODY = 65534  # the uid and gid of the user nobody
LATE_IMPORTS = "late imports as nobody: "


def run_as_nobody(prepare: str, run: str) -> subprocess.CompletedProcess:
    """Run a child Python that runs ``prepare`` as root, then drops to the user nobody and runs
    ``run``; return it (stdout and stderr as text).

    Root reads every file, so a permission check needs another user. That user may be unable to
    read the checkout or its Python environment (a clone inside /root, a folder of mode 700):
    ``prepare`` must therefore import, or use once, everything ``run`` needs. The child records
    the modules ``run`` still imports; the test skips, naming them and the folder, only if one
    of them could not be found as nobody although root finds it. A failure of the checked
    behaviour itself is never turned into a skip.
    """
    if os.geteuid() != 0:
        pytest.skip("dropping to the user nobody needs root; this user is checked directly")
    child = "\n".join([
        "import json, os, sys",
        textwrap.dedent(prepare),
        "class _RecordImports:  # sees every import made after the drop, then lets it proceed",
        "    names = []",
        "    def find_spec(self, name, path=None, target=None):",
        "        self.names.append(name)",
        "_imports = _RecordImports()",
        f"os.setgroups([]); os.setgid({NOBODY}); os.setuid({NOBODY})",
        "sys.meta_path.insert(0, _imports)",
        "try:",
        textwrap.indent(textwrap.dedent(run), "    "),
        "finally:",
        "    _missing = [name for name in _imports.names if name not in sys.modules]",
        f"    print({LATE_IMPORTS!r} + json.dumps(_missing), file=sys.stderr)",
    ])
    result = subprocess.run([sys.executable, "-c", child], cwd=REPO, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "HOME": "/tmp"})
    if LATE_IMPORTS not in result.stderr:
        pytest.skip("could not run Python as the user nobody: "
                    + (result.stderr.strip().splitlines() or ["no output"])[-1])
    before, _, after = result.stderr.partition(LATE_IMPORTS)
    missing, _, rest = after.partition("\n")
    unreachable = [name for name in json.loads(missing) if _found_by_root(name)]
    if unreachable:
        pytest.skip(f"the user nobody cannot import {', '.join(unreachable)}, which root finds: "
                    "this checkout or its Python environment lies in a folder closed to other "
                    "users; import it in the check's prepare step")
    result.stderr = before + rest
    return result


def _found_by_root(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
