"""What is running: kiebot's version (from the installed package's metadata) and Python's."""
from __future__ import annotations

import platform
from importlib import metadata

# Running from a source tree that was never installed (pip install -e . or .) has no metadata;
# the version then says so rather than guessing.
UNINSTALLED = "0+unknown"


def version() -> str:
    """kiebot's version as installed (setup.py's `version`)."""
    try:
        return metadata.version("kiebot")
    except metadata.PackageNotFoundError:
        return UNINSTALLED


def python_version() -> str:
    return platform.python_version()
