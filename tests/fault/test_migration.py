"""A version-0 spool migrated by a real sidecar process: killed half-way it resumes without losing or duplicating an
event, on a volume too small for the copy a single transaction made it fits, a volume without room for one step exits
2 naming the folder and the room needed, and a spool of a newer schema exits 2 naming both versions."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sidecar.collector.server import Collector
from sidecar.spool import schema
from sidecar.spool.migrate import HEADROOM_BYTES
from tests.fault.conftest import ProcessFactory, wait_delivered
from tests.support.harness import TEST_ENV, SidecarProcess, free_port
from tests.support.v0_spool import V0Spool, build

pytestmark = pytest.mark.slow

Mount = Callable[[int], Path]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Mount]:
    """Mounts tmpfs volumes of a given size in MiB (needs root; skipped otherwise), unmounted afterwards."""
    mounted: list[Path] = []

    def mount(mib: int) -> Path:
        path = tmp_path / f"volume-{len(mounted)}"
        path.mkdir()
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(path)], capture_output=True, check=False
        )
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {result.stderr.decode().strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


def process_on(spool_dir: Path, collector: Collector, log_path: Path, volume_mib: int) -> SidecarProcess:
    """A sidecar process whose spool is ``spool_dir``, on a volume of ``volume_mib`` MiB: its bound leaves the
    headroom the README asks for (the bound sizes the WAL, which would otherwise outgrow so small a volume)."""
    return SidecarProcess(
        env={
            **TEST_ENV,
            "SIDECAR_ENDPOINT_US": collector.url,
            "SIDECAR_ENDPOINT_EU": collector.url,
            "SIDECAR_SPOOL_DIR": str(spool_dir),
            "SIDECAR_SPOOL_MAX_BYTES": f"{volume_mib * 3 // 4}MiB",
            "SIDECAR_LOG_LEVEL": "info",
        },
        port=free_port(),
        log_path=log_path,
    )


def expected_deliveries(built: V0Spool) -> set[str]:
    """What a migrated spool delivers: every event, and the dead letters marked for replay (every third)."""
    return set(built.events.values()) | {mid for seq, mid in built.dead_letters.items() if seq % 3 == 0}


def migration_under_way(path: Path) -> bool:
    """Whether the spool at ``path`` is half-way: the version-0 tables renamed and some rows already moved."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
    except sqlite3.Error:
        return False
    try:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'events_v0'").fetchone():
            return False
        return db.execute("SELECT EXISTS (SELECT 1 FROM events)").fetchone()[0] == 1
    except sqlite3.Error:
        return False
    finally:
        db.close()


def seqs(path: Path, table: str) -> set[int]:
    """The seqs a table of the spool holds (none if it does not exist)."""
    db = sqlite3.connect(path)
    try:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone():
            return set()
        return {row[0] for row in db.execute(f"SELECT seq FROM {table}")}
    finally:
        db.close()


async def delivered_once(collector: Collector, built: V0Spool) -> None:
    """Every event and replayed dead letter of ``built`` arrives, each exactly once, and nothing else."""
    expected = expected_deliveries(built)
    await wait_delivered(collector, expected, timeout=90)
    counts = Counter(collector.store.message_ids())
    assert set(counts) == expected
    assert max(counts.values()) == 1, "an event arrived twice"


async def test_a_sigkill_half_way_through_a_migration_resumes_without_loss_or_duplicates(
    collector: Collector, sidecar_process: ProcessFactory, tmp_path: Path
) -> None:
    """A sidecar SIGKILLed while it migrates a 16 MiB version-0 spool leaves each row in exactly one of the old and
    new tables; the next start resumes, and every event then arrives exactly once (the dead letters not marked for
    replay stay dead letters)."""
    spool = tmp_path / "spool"
    built = build(spool, 16)
    first = sidecar_process()
    first.start()
    deadline = time.monotonic() + 60
    while not migration_under_way(spool / "spool.db"):
        assert first.process is not None and first.process.poll() is None, first.read_log()
        assert time.monotonic() < deadline, "the migration never started"
        await asyncio.sleep(0.005)
    first.kill()
    moved, left = seqs(spool / "spool.db", "events"), seqs(spool / "spool.db", "events_v0")
    assert moved and left, "killed half-way"
    assert not moved & left and moved | left == set(built.events)
    second = sidecar_process()
    second.start()
    await second.wait_ready(timeout=60)
    await delivered_once(collector, built)
    kept = {seq for seq in built.dead_letters if seq % 3}
    assert seqs(spool / "spool.db", "dead_letters") >= kept
    log = second.read_log()
    assert "spool_migration_finished" in log
    second.terminate()
    assert await second.wait_exit(timeout=30) == 0


async def test_a_version_0_spool_migrates_on_a_volume_too_small_for_a_single_transaction(
    collector: Collector, tmpfs: Mount, tmp_path: Path
) -> None:
    """16 MiB of version-0 spool on a 40 MiB volume: one transaction needed about four times the spool and never
    started; the steps stay within the spool plus their headroom, and every event arrives once."""
    volume = tmpfs(40)
    built = build(volume / "spool", 16)
    before = sum(f.stat().st_size for f in (volume / "spool").iterdir())
    process = process_on(volume / "spool", collector, tmp_path / "sidecar.log", 40)
    process.start()
    try:
        peak = 0
        deadline = time.monotonic() + 60
        while not (process.process is not None and "sidecar_started" in process.read_log()):
            assert process.process is not None and process.process.poll() is None, process.read_log()
            assert time.monotonic() < deadline, "the sidecar did not start"
            stat = os.statvfs(volume)
            peak = max(peak, (stat.f_blocks - stat.f_bfree) * stat.f_frsize)
            await asyncio.sleep(0.005)
        await process.wait_ready()
        assert peak <= before + HEADROOM_BYTES, f"peak {peak / 2**20:.1f} MiB"
        await delivered_once(collector, built)
        process.terminate()
        assert await process.wait_exit(timeout=30) == 0
    finally:
        process.ensure_stopped()


def fill_until_free(volume: Path, free: int) -> Path:
    """Write a file on ``volume`` until about ``free`` bytes are left; return it."""
    filler = volume / "filler"
    stat = os.statvfs(volume)
    size = stat.f_bavail * stat.f_frsize - free
    with filler.open("wb") as out:
        out.truncate(0)
        chunk = b"\0" * 2**20
        while size > 0:
            out.write(chunk[: min(size, len(chunk))])
            size -= len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return filler


async def test_a_volume_without_room_for_a_step_exits_2_naming_the_folder_and_the_room_needed(
    collector: Collector, tmpfs: Mount, tmp_path: Path
) -> None:
    """A version-0 spool on a volume with 4 MiB free: the sidecar exits 2 at once, naming SIDECAR_SPOOL_DIR, the
    room the migration needs and what is free (not an error about a rollback); with room made, the next start
    migrates and delivers everything."""
    volume = tmpfs(32)
    built = build(volume / "spool", 4)
    filler = fill_until_free(volume, 4 * 2**20)
    process = process_on(volume / "spool", collector, tmp_path / "sidecar.log", 32)
    process.start()
    try:
        assert await process.wait_exit(timeout=30) == 2
        log = process.read_log()
        assert "SIDECAR_SPOOL_DIR" in log and str(volume / "spool") in log
        needed = re.search(r"needs about ([0-9.]+) MiB free beside the spool's files .* and ([0-9.]+) MiB is free", log)
        assert needed is not None, log
        assert float(needed[2]) < float(needed[1]) <= HEADROOM_BYTES / 2**20
        assert "rollback" not in log
        assert "Traceback" not in log
        filler.unlink()
        again = process_on(volume / "spool", collector, tmp_path / "sidecar-again.log", 32)
        again.start()
        try:
            await again.wait_ready(timeout=60)
            await delivered_once(collector, built)
        finally:
            again.ensure_stopped()
    finally:
        process.ensure_stopped()


async def test_a_spool_of_a_newer_schema_exits_2_naming_both_versions(
    collector: Collector, sidecar_process: ProcessFactory, tmp_path: Path
) -> None:
    """A spool written by a later release (user_version 3, one more column) is not opened: exit 2 with the file's
    version and the one this build knows, and the file left as it was."""
    spool = tmp_path / "spool"
    spool.mkdir()
    db = sqlite3.connect(spool / "spool.db")
    for statement in schema.SCHEMA:
        db.execute(statement)
    db.execute("ALTER TABLE events ADD COLUMN priority INTEGER")
    db.execute("PRAGMA user_version = 3")
    db.commit()
    db.close()
    process = sidecar_process()
    process.start()
    assert await process.wait_exit(timeout=30) == 2
    log = process.read_log()
    assert "spool schema version 3" in log and "newer than version 2," in log
    assert "SIDECAR_SPOOL_DIR" in log and "Traceback" not in log
    db = sqlite3.connect(spool / "spool.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == 3
    db.close()
