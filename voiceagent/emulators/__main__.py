"""Run a protocol emulator: `python -m voiceagent.emulators {realtime|cartesia} --port N`."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    usage = "usage: python -m voiceagent.emulators {realtime|cartesia} [--help] [options]"
    if not args or args[0] not in ("realtime", "cartesia"):
        print(usage, file=sys.stderr)
        return 2
    if args[0] == "realtime":
        from voiceagent.emulators.realtime import main as run
    else:
        from voiceagent.emulators.cartesia import main as run
    return run(args[1:])


if __name__ == "__main__":
    raise SystemExit(main())
