"""Where docpipe keeps its local state: the default data dir and the files `docpipe up` leaves there.

A module without the settings machinery (pydantic), so that a CLI search of a running stack finds the stack's API
without loading it; pipeline/config.py takes its default from here.
"""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(".docpipe")


def stack_file(data_dir: Path) -> Path:
    """What `docpipe up` started and where: components, their pids and ports, the API's URL."""
    return data_dir / "stack.json"


def api_key_file(data_dir: Path) -> Path:
    """The local stack's key of tenant "default" (mode 0600); other tenants' keys sit beside it in api-keys/."""
    return data_dir / "api-key"
