"""Stop `make env` early, with a clear message, on a Python the book is not tested with.

    python3 tools/python_version.py        # exit status 0 on a tested version, 1 otherwise

It runs under the interpreter that would make .venv, before anything is installed, so it keeps
to syntax that old versions still parse. ALLOW_UNTESTED_PYTHON=1 turns the stop into a warning.
"""

from __future__ import print_function

import os
import sys

# The versions whose test runs the README reports (Python 3.11 also in CI).
TESTED = ((3, 11), (3, 12), (3, 13))


def names(versions):
    return ", ".join("%d.%d" % version for version in versions)


def check(version, allow_untested=False):
    """(exit status, message) for a Python of this (major, minor) version."""
    if tuple(version[:2]) in TESTED:
        return 0, ""
    message = ("Python %d.%d (%s) is not one the book is tested with (%s): its pinned "
               "requirements may not install or behave the same.\n"
               "How to fix it: make env PYTHON=python3.12 (or another tested version, e.g. "
               "from pyenv, uv python install 3.12, or your system's packages); "
               "ALLOW_UNTESTED_PYTHON=1 make env tries this one anyway."
               % (version[0], version[1], sys.executable, names(TESTED)))
    return (0 if allow_untested else 1), ("warning: " if allow_untested else "error: ") + message


def _argument_problem(argv):
    """(exit status, message) for the command line, or None: it takes -h/--help only, since it
    checks the Python it runs under, whatever a version given to it says."""
    if not argv:
        return None
    if argv[0] in ("-h", "--help"):
        return 0, __doc__.strip()
    return 2, ("error: python_version.py takes no arguments (got %s): it checks the Python it "
               "runs under, %s. To check another version, run it with that Python, e.g. "
               "python3.12 tools/python_version.py" % (" ".join(argv), sys.executable))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    problem = _argument_problem(argv)
    if problem:
        status, message = problem
        print(message, file=sys.stdout if status == 0 else sys.stderr)
        return status
    status, message = check(sys.version_info, os.environ.get("ALLOW_UNTESTED_PYTHON") == "1")
    if message:
        print(message, file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
