"""The SQLite spool's files and schema: the private folder and files, connections, the schema (brought up to date
by :mod:`sidecar.spool.migrate` when a connection opens), and the pieces every user of the database shares (key
hashes, key lookup, transactions).

The layout itself is drawn in :mod:`sidecar.spool.store`'s docstring.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
from pathlib import Path

from sidecar.errors import SpoolFailure
from sidecar.model import Region, ShardKey

FOLDER_MODE = 0o700
FILE_MODE = 0o600
SCHEMA_VERSION = 2

OUTCOME_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS outcomes (seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL,"
    " kind INTEGER NOT NULL, fingerprint TEXT NOT NULL, region TEXT NOT NULL, message_id TEXT NOT NULL,"
    " reason TEXT NOT NULL, status INTEGER NOT NULL, response TEXT NOT NULL, accepted_at REAL NOT NULL,"
    " size INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS outcomes_by_message ON outcomes (message_id)",
    "CREATE TABLE IF NOT EXISTS key_states (write_key TEXT NOT NULL, region TEXT NOT NULL, state INTEGER NOT NULL,"
    " since REAL NOT NULL, status INTEGER NOT NULL, response TEXT NOT NULL, PRIMARY KEY (write_key, region))",
    "CREATE TABLE IF NOT EXISTS spool_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS forwarded (message_id TEXT NOT NULL, fingerprint TEXT NOT NULL, region TEXT NOT NULL,"
    " gateway TEXT NOT NULL, accepted_at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS forwarded_by_message ON forwarded (message_id)",
    "INSERT OR IGNORE INTO spool_meta (name, value) VALUES ('id', lower(hex(randomblob(8))))",
)
"""What version 2 adds to version 1: the outcome log, each key's stored state, and the spool's identity (a random
id that cursors carry, so a cursor of another spool is refused)."""

SCHEMA_V1 = (
    "CREATE TABLE IF NOT EXISTS keys (id INTEGER PRIMARY KEY AUTOINCREMENT, hash INTEGER NOT NULL,"
    " write_key TEXT NOT NULL, region TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS keys_by_hash ON keys (hash)",
    "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, key_id INTEGER NOT NULL,"
    " message_id TEXT NOT NULL, payload BLOB NOT NULL, accepted_at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS events_by_key ON events (key_id)",
    "CREATE TABLE IF NOT EXISTS dead_letters (seq INTEGER PRIMARY KEY, key_id INTEGER NOT NULL,"
    " message_id TEXT NOT NULL, payload BLOB NOT NULL, accepted_at REAL NOT NULL, dead_at REAL NOT NULL,"
    " reason TEXT NOT NULL, response TEXT NOT NULL, size INTEGER NOT NULL, replay INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS dead_letters_by_key ON dead_letters (key_id)",
    "CREATE INDEX IF NOT EXISTS dead_letters_by_age ON dead_letters (dead_at, seq)",
)
SCHEMA = SCHEMA_V1 + OUTCOME_SCHEMA
"""Every statement of the current version, in order (each idempotent)."""
COLUMNS = "seq, key_id, message_id, payload, accepted_at"
REGIONS = {region.value: region for region in Region}
"""Region by its stored text: a dict lookup, where ``Region(text)`` goes through the enum machinery for every row."""


def key_hash(write_key: str, region: str) -> int:
    """The 64-bit hash that finds a (write key, region)'s row in ``keys`` (the full key is compared as well)."""
    digest = hashlib.blake2b(f"{region}\0{write_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def private_file(path: Path) -> None:
    """Create ``path`` (empty) 0600 if missing, and make it 0600 if it exists: the umask plays no part."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def private_folder(directory: Path) -> None:
    """Create the spool folder 0700 (its parents as the umask says) and make an existing one 0700 when it is ours."""
    directory.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    with contextlib.suppress(PermissionError):  # a mounted volume owned by someone else keeps its mode
        os.chmod(directory, FOLDER_MODE)


def connect_reader(path: Path) -> sqlite3.Connection:
    """A second connection that only reads: in WAL mode it reads beside the writer without blocking it."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA query_only=ON")
    db.execute("PRAGMA busy_timeout=5000")
    return db


def connect(path: Path) -> sqlite3.Connection:
    """A connection in WAL mode with fsync'd commits and the current schema (migrated if older, refused if newer:
    see :func:`sidecar.spool.migrate.upgrade`); used by the spool and by the dead-letters command. The database and
    its WAL are created 0600."""
    private_file(path)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=5000")
        # Some builds (Debian's among them) default to secure_delete=ON, which also zeroes and writes every page a
        # delivered batch frees: about a fifth more bytes written per event (WAL, then checkpoint). FAST still
        # zeroes deleted rows inside the pages written anyway, and writes nothing more.
        db.execute("PRAGMA secure_delete=FAST")
        from sidecar.spool.migrate import upgrade  # noqa: PLC0415 - migrate builds on this module's schema

        upgrade(db, path)
    except BaseException:
        db.close()
        raise
    for suffix in ("-wal", "-shm"):  # created by SQLite with spool.db's mode; an older spool's may be wider
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", FILE_MODE)
    return db


def lookup_key(db: sqlite3.Connection, key: ShardKey) -> int | None:
    """A key's id from ``keys`` (on any connection), or None."""
    write_key, region = key
    for key_id, stored_key, stored_region in db.execute(
        "SELECT id, write_key, region FROM keys WHERE hash = ?", (key_hash(write_key, region.value),)
    ):
        if stored_key == write_key and stored_region == region.value:
            return int(key_id)
    return None


class Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error, with SQLite errors turned into SpoolFailure."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise SpoolFailure(f"spool write failed: {exc}") from exc

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as error:
                self._rollback()
                raise SpoolFailure(f"spool write failed: {error}") from error
            return
        self._rollback()
        if isinstance(exc, sqlite3.Error):
            raise SpoolFailure(f"spool write failed: {exc}") from exc

    def _rollback(self) -> None:
        # SQLite may have rolled back already (a full disk, say): nothing left to undo then.
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
