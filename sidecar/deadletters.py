"""``segment-sidecar dead-letters list|replay``: inspect and resend events the sidecar gave up on.

Both read the spool folder (SIDECAR_SPOOL_DIR, or --spool-dir) directly and work while the sidecar runs. replay marks
dead letters; the running sidecar moves them back into its queue within moments (a stopped one does so when it
starts), with their original message ids, so Segment de-duplicates any that did arrive after all.

list prints one line per dead letter and a count ("0 dead letters" when there are none); --format json (or --json)
prints one JSON array ("[]" when empty), and --format jsonl one JSON object per line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from sidecar.cli import EXIT_CONFIG, plain, settings_or_exit
from sidecar.errors import ConfigError
from sidecar.model import write_key_hash
from sidecar.spool.offline import list_dead_letters, mark_for_replay


def main(argv: list[str]) -> int:
    """List or replay dead letters; exit 2 for a spool this build cannot open (a newer schema, no room to migrate)."""
    try:
        return _list_or_replay(argv)
    except ConfigError as error:
        print(f"segment-sidecar dead-letters: {error}", file=sys.stderr)
        return EXIT_CONFIG


def _list_or_replay(argv: list[str]) -> int:
    """List or replay dead letters."""
    parser = argparse.ArgumentParser(
        prog="segment-sidecar dead-letters",
        description=plain(__doc__ or ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=["list", "replay"])
    parser.add_argument("--spool-dir", type=Path, help="the spool folder (default: SIDECAR_SPOOL_DIR's value)")
    parser.add_argument("--write-key-hash", help="only the dead letters of this write key (its short hash)")
    parser.add_argument("--format", choices=["text", "json", "jsonl"], default="text")
    parser.add_argument("--json", action="store_const", const="json", dest="format", help="same as --format json")
    args = parser.parse_args(argv)
    # The settings are parsed only when needed: an explicit folder works whatever else the environment holds.
    spool_dir: Path = args.spool_dir if args.spool_dir is not None else settings_or_exit().spool_dir
    if not (spool_dir / "spool.db").exists():
        print(f"no spool at {spool_dir} (set SIDECAR_SPOOL_DIR or --spool-dir)", file=sys.stderr)
        return EXIT_CONFIG
    if args.action == "replay":
        count = mark_for_replay(spool_dir, args.write_key_hash)
        print(f"{count} dead letters marked for replay")
        return 0
    rows = []
    for letter in list_dead_letters(spool_dir, args.write_key_hash):
        event = letter.event
        rows.append(
            {
                "seq": event.seq,
                "message_id": event.message_id,
                "write_key_hash": write_key_hash(event.write_key),
                "region": event.region.value,
                "reason": letter.reason,
                "response": letter.response,
                "event": orjson.loads(event.payload),
            }
        )
    out = sys.stdout.buffer
    if args.format == "json":
        # One array, an element per line: a JSON document for tools, still readable in a terminal.
        out.write(b"[" + b",\n ".join(orjson.dumps(row) for row in rows) + b"]\n")
    elif args.format == "jsonl":
        out.writelines(orjson.dumps(row) + b"\n" for row in rows)
    else:
        for row in rows:
            print(f"{row['seq']}\t{row['write_key_hash']}\t{row['message_id']}\t{row['reason']}\t{row['response']}")
        print(f"{len(rows)} dead letter{'' if len(rows) == 1 else 's'}")
    return 0
