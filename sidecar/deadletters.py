"""``segment-sidecar dead-letters list|replay``: inspect and resend events the sidecar gave up on.

Both read the spool folder ($SIDECAR_SPOOL_DIR) directly and work while the sidecar runs. ``replay`` marks dead letters;
the running sidecar moves them back into its queue within moments (a stopped one does so when it starts), with their
original message ids, so Segment de-duplicates any that did arrive after all.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import orjson

from sidecar.errors import ConfigError
from sidecar.model import write_key_hash
from sidecar.spool.offline import list_dead_letters, mark_for_replay


def main(argv: list[str]) -> int:
    """List or replay dead letters; exit 2 for a spool this build cannot open (a newer schema, no room to migrate)."""
    try:
        return _list_or_replay(argv)
    except ConfigError as error:
        print(f"segment-sidecar dead-letters: {error}", file=sys.stderr)
        return 2


def _list_or_replay(argv: list[str]) -> int:
    """List or replay dead letters."""
    parser = argparse.ArgumentParser(prog="segment-sidecar dead-letters", description=__doc__)
    parser.add_argument("action", choices=["list", "replay"])
    parser.add_argument(
        "--spool-dir", type=Path, default=Path(os.environ.get("SIDECAR_SPOOL_DIR", "segment-sidecar-spool"))
    )
    parser.add_argument("--write-key-hash", help="only the dead letters of this write key (its short hash)")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    args = parser.parse_args(argv)
    if not (args.spool_dir / "spool.db").exists():
        print(f"no spool at {args.spool_dir} (set SIDECAR_SPOOL_DIR or --spool-dir)", file=sys.stderr)
        return 2
    if args.action == "replay":
        count = mark_for_replay(args.spool_dir, args.write_key_hash)
        print(f"{count} dead letters marked for replay")
        return 0
    for letter in list_dead_letters(args.spool_dir, args.write_key_hash):
        event = letter.event
        row = {
            "seq": event.seq,
            "message_id": event.message_id,
            "write_key_hash": write_key_hash(event.write_key),
            "region": event.region.value,
            "reason": letter.reason,
            "response": letter.response,
            "event": orjson.loads(event.payload),
        }
        if args.format == "json":
            sys.stdout.buffer.write(orjson.dumps(row) + b"\n")
        else:
            print(f"{event.seq}\t{row['write_key_hash']}\t{event.message_id}\t{letter.reason}\t{letter.response}")
    return 0
