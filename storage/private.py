"""Files that hold personal data are readable by the server's own user only.

The database (with the staff sessions' signing key), its backups and the documents
beneficiaries send are written with owner-only rights whatever the process's umask: another
account on the machine has no business reading them.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def private_folder(path: Path) -> None:
    """Create ``path`` and its missing parents, owner-only (existing folders are left as
    they are: they may be shared, such as /tmp or a mount)."""
    missing = []
    folder = path
    while not folder.exists():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=FOLDER_MODE)
            folder.chmod(FOLDER_MODE)  # mkdir's mode is narrowed by the umask, never widened


def private_file(path: Path) -> None:
    """Owner-only rights on an existing file, if anyone else may read or write it."""
    with contextlib.suppress(FileNotFoundError):
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            path.chmod(mode & 0o700 | FILE_MODE)


def create_private(path: Path) -> None:
    """An empty file, owner-only, unless it exists already (then made owner-only)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        private_file(path)
