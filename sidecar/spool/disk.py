"""What the SQLite spool occupies on disk, and how its write-ahead log is sized for the spool's bound.

The spool's bound, given to :meth:`~sidecar.spool.sqlite.SqliteStore.open`, scales the WAL: it is checkpointed every
``max_bytes / 16`` bytes of pages (at least 32 pages, at most SQLite's default of 1,000) and truncated back to that
size after a checkpoint, so that the log stays a small part of what the bound allows.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sidecar.errors import SpoolFailure

DEFAULT_WAL_PAGES = 1000
"""SQLite's own checkpoint threshold (pages); a spool bound below 64 MiB lowers it (see :func:`size_wal`)."""

_USED_PAGES = (
    "SELECT (page_count - freelist_count) * page_size FROM pragma_page_count, pragma_freelist_count, pragma_page_size"
)


def size_wal(db: sqlite3.Connection, max_bytes: int | None) -> int:
    """Set the checkpoint threshold and the WAL's size after a checkpoint for a spool bounded by ``max_bytes`` (None:
    SQLite's default); return the bytes the WAL may grow to between two checkpoints."""
    pages = DEFAULT_WAL_PAGES
    page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
    if max_bytes is not None:
        pages = max(32, min(DEFAULT_WAL_PAGES, max_bytes // 16 // page_size))
    db.execute(f"PRAGMA wal_autocheckpoint = {pages}")
    db.execute(f"PRAGMA journal_size_limit = {pages * page_size}")
    return pages * page_size


def used_bytes(db: sqlite3.Connection, path: Path, wal_bytes: int) -> int:
    """The database's pages in use (rows, keys, indexes; free pages are reused before the file grows), plus the WAL
    as it is on disk but at least ``wal_bytes`` (what it may grow to between two checkpoints), plus its index."""
    try:
        used = int(db.execute(_USED_PAGES).fetchone()[0])
    except sqlite3.Error as exc:
        raise SpoolFailure(f"spool read failed: {exc}") from exc
    for suffix, at_least in (("-wal", wal_bytes), ("-shm", 0)):
        try:
            used += max(at_least, os.stat(f"{path}{suffix}").st_size)
        except FileNotFoundError:
            used += at_least
    return used
