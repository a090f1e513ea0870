"""Blob storage for uploaded files, behind a small interface so S3-like backends can replace the disk.

Keys are ours (``org_id/agent_id/uuid``), never a client's file name; :func:`check_key` still refuses
anything that could escape the root, as a second line of defence.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from pathlib import Path
from typing import Protocol, runtime_checkable

from salesflow.settings import Settings

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class StorageError(Exception):
    """The storage backend could not do what was asked."""


class InvalidKeyError(StorageError, ValueError):
    """A key that is not a plain relative path of safe segments."""


class BlobNotFoundError(StorageError, KeyError):
    """No blob under that key."""


def check_key(key: str) -> str:
    """Return ``key`` if it is 1-8 safe segments joined by '/' (no '..', no absolute path), else raise."""
    segments = key.split("/")
    if not 1 <= len(segments) <= 8 or any(s in {".", ".."} or not _SEGMENT.match(s) for s in segments):
        raise InvalidKeyError(f"invalid storage key: {key!r}")
    return key


@runtime_checkable
class Storage(Protocol):
    """Where uploaded bytes live. Implementations must be safe to share across requests."""

    async def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing what was there."""

    async def get(self, key: str) -> bytes:
        """The bytes under ``key``; BlobNotFoundError if there are none."""

    async def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error (deletes are retried)."""


class LocalStorage:
    """Files under a root directory; writes go to a temp file first so readers never see half a blob."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        # check_key already forbids '..'; this also covers a symlink planted inside the root.
        if not path.is_relative_to(self.root):
            raise InvalidKeyError(f"storage key escapes the root: {key!r}")
        return path

    def _put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            with tmp.open("xb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def _get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise BlobNotFoundError(key) from exc

    def _delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    async def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (disk I/O runs in a thread, off the event loop)."""
        await asyncio.to_thread(self._put, key, data)

    async def get(self, key: str) -> bytes:
        """The bytes under ``key``."""
        return await asyncio.to_thread(self._get, key)

    async def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        await asyncio.to_thread(self._delete, key)


def storage_root(settings: Settings) -> Path:
    """Where LocalStorage keeps files: ``storage_dir`` or ``data_dir / "assets"``."""
    return settings.storage_dir if settings.storage_dir is not None else settings.data_dir / "assets"


def storage_from_settings(settings: Settings) -> Storage:
    """The storage backend the settings select (only the local disk for now)."""
    return LocalStorage(storage_root(settings))


__all__ = [
    "BlobNotFoundError",
    "InvalidKeyError",
    "LocalStorage",
    "Storage",
    "StorageError",
    "check_key",
    "storage_from_settings",
    "storage_root",
]
