"""`voiceagent sessions export`: every stored room's report, one JSON object a line.

Reads the store the settings name (`VOICEAGENT_DATABASE_URL`, else the SQLite file in
`VOICEAGENT_DATA_DIR`), runs pending migrations first, and writes to stdout or
`--output`. `--since` takes Unix seconds, an ISO 8601 time or a duration back from
now (`90m`, `2h`, `7d`); without it every room is exported. The report's shape is
docs/session-report.schema.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TextIO

import orjson

from voiceagent.access.token_command import duration_s


def since_value(text: str) -> float:
    """`--since`: a duration back from now, Unix seconds, or ISO 8601."""
    from voiceagent.admin import parse_since

    try:
        return time.time() - duration_s(text) if text[-1:] in "smhd" else parse_since(text) or 0
    except (argparse.ArgumentTypeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time (Unix seconds, ISO 8601) or a duration like 2h or 7d"
        ) from None


def add_sessions_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sessions = commands.add_parser("sessions", help="read the conversation store")
    actions = sessions.add_subparsers(dest="action", required=True)
    export = actions.add_parser("export", help="export session reports", description=__doc__)
    export.add_argument("--since", type=since_value, help="only rooms started since then")
    export.add_argument("--format", choices=["jsonl"], default="jsonl", help="jsonl (default)")
    export.add_argument("--output", type=Path, help="write here instead of stdout")


def run_sessions_command(args: argparse.Namespace) -> int:
    from voiceagent.config import ConfigError, Settings
    from voiceagent.store import open_store
    from voiceagent.store.report import export_reports

    try:
        store = open_store(Settings.from_env())
    except ConfigError as exc:
        print(f"voiceagent: configuration error: {exc}", file=sys.stderr)
        return 2
    if store is None:
        print("voiceagent: the store is off (VOICEAGENT_STORE=0)", file=sys.stderr)
        return 2
    backend = store.backend
    try:
        backend.migrate()
        out: TextIO = args.output.open("w") if args.output else sys.stdout
        count = 0
        try:
            for report in export_reports(backend, since=args.since):
                out.write(orjson.dumps(report).decode() + "\n")
                count += 1
        finally:
            if args.output:
                out.close()
    except Exception as exc:
        print(f"voiceagent: cannot read the store ({backend.describe()}): {exc}", file=sys.stderr)
        return 1
    finally:
        backend.close()
    print(f"voiceagent: exported {count} session(s)", file=sys.stderr)
    return 0
