"""The admin token: made on the server's first start, kept in a file only its owner can read.

There is no default credential. The file sits next to the store (``<store folder>/serve-token``), so the
`darkfab promote` family of commands on the same machine finds it; elsewhere they take ``--token``.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from ..errors import StoreError

TOKEN_FILE = "serve-token"


def token_path(artifact_root: Path) -> Path:
    """Where the token of a store lives: beside its ``artifacts`` folder (the SQLite file's folder)."""
    return Path(artifact_root).parent / TOKEN_FILE


def _check_private(path: Path) -> None:
    mode = path.stat().st_mode
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise StoreError(
            f"the admin token file {path} can be read by others (mode {stat.S_IMODE(mode):04o}); "
            f"fix: chmod 600 {path}, or delete it to have a new token made"
        )


def ensure_token(path: Path) -> str:
    """The token in ``path``; a new random one (written with mode 0600) when the file does not exist."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_token(path)
    except OSError as err:
        raise StoreError(f"cannot create the admin token file {path}: {err.strerror or err}") from None
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


def read_token(path: Path) -> str:
    """The token in an existing file; StoreError naming the file and the fix otherwise."""
    path = Path(path)
    try:
        _check_private(path)
        token = path.read_text().strip()
    except FileNotFoundError:
        raise StoreError(
            f"no admin token file at {path}; fix: start the server once (`darkfab serve`) to make it, or pass --token"
        ) from None
    except OSError as err:
        raise StoreError(f"cannot read the admin token file {path}: {err.strerror or err}") from None
    if not token:
        raise StoreError(f"the admin token file {path} is empty; fix: delete it and restart the server")
    return token
