"""Content-addressed artifact files: the name of a file is the sha256 of its bytes.

With ``blobs`` (a shared store that keeps artifacts, see ``darkfab.store``), every artifact written here is
kept there too, and one missing here is read from there, verified and cached: workers on other machines
need no shared folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from ..errors import IntegrityError, NotFoundError, StoreError

_DIGEST = re.compile(r"[0-9a-f]{64}")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Blobs(Protocol):
    def put_artifact_blob(self, digest: str, data: bytes) -> None: ...
    def get_artifact_blob(self, digest: str) -> bytes | None: ...


def _private_dirs(folder: Path) -> None:
    """Create ``folder`` and each missing folder above it readable by their owner only (0700)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir(mode=0o700, exist_ok=True)


class ArtifactStore:
    """Files under ``root/sha256/<first two hex digits>/<sha256>``, written atomically, verified on read."""

    def __init__(self, root: Path, blobs: Blobs | None = None) -> None:
        self.root = Path(root)
        self.blobs = blobs

    def __repr__(self) -> str:
        return f"ArtifactStore({str(self.root)!r})"

    def path(self, digest: str) -> Path:
        """Where the artifact with this sha256 lives (whether or not it exists)."""
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise StoreError(f"{digest!r} is not a sha256 digest; expected 64 lowercase hex digits")
        return self.root / "sha256" / digest[:2] / digest

    def relative_path(self, digest: str) -> str:
        """The artifact's path relative to the root, with '/' separators (what the store records)."""
        return self.path(digest).relative_to(self.root).as_posix()

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def put(self, data: bytes) -> tuple[str, Path]:
        """Store ``data``; returns its sha256 and path. Storing the same bytes twice writes them once.

        The bytes go to a temporary file in the target folder, are flushed to disk, then renamed into
        place, so a reader never sees a partial artifact. A damaged copy already in place is replaced.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise StoreError(f"an artifact must be bytes, got {type(data).__name__}; fix: serialise it first")
        data = bytes(data)
        digest = sha256_hex(data)
        target = self.path(digest)
        if self.blobs is not None:
            self.blobs.put_artifact_blob(digest, data)
        if target.is_file() and target.stat().st_size == len(data) and self._hash_file(target) == digest:
            return digest, target
        self._write_file(digest, target, data)
        return digest, target

    def _write_file(self, digest: str, target: Path, data: bytes) -> None:
        try:
            _private_dirs(target.parent)  # and mkstemp's files are 0600 already
            fd, tmp = tempfile.mkstemp(prefix=f".{digest[:12]}.", suffix=".tmp", dir=target.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as err:
            raise StoreError(
                f"cannot write artifact {digest[:12]}... under {self.root}: {err.strerror or err}; "
                "fix: check that the folder is writable and the disk has room (or set DARKFAB_ARTIFACTS)"
            ) from None

    def get(self, digest: str) -> bytes:
        """The bytes of the artifact, re-hashed on every read; IntegrityError when they do not match."""
        target = self.path(digest)
        try:
            data = target.read_bytes()
        except FileNotFoundError:
            kept = self.blobs.get_artifact_blob(digest) if self.blobs is not None else None
            if kept is None:
                raise NotFoundError(
                    f"artifact {digest} is missing: no file at {target}; fix: restore the artifacts folder "
                    f"{self.root} from a backup, or register the model again"
                ) from None
            if sha256_hex(kept) != digest:
                raise IntegrityError(
                    f"artifact {digest} kept in the store does not match its hash; it was changed after it was "
                    "written; fix: register the model again, and do not load it"
                ) from None
            with contextlib.suppress(StoreError):  # cached here for the next read, when the folder allows
                self._write_file(digest, target, kept)
            return kept
        except OSError as err:
            raise StoreError(f"cannot read artifact {target}: {err.strerror or err}") from None
        actual = sha256_hex(data)
        if actual != digest:
            raise IntegrityError(
                f"artifact file {target} does not match its hash: expected sha256 {digest}, found {actual}; "
                "the file was changed or damaged after it was written; fix: restore it from a backup or "
                "register the model again, and do not load it"
            )
        return data

    @staticmethod
    def _hash_file(path: Path) -> str:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
