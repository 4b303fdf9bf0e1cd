"""`voiceagent token`: mint a room token for development and scripts.

An application's own backend mints tokens in production (any JWT library; see
docs/security.md); this command signs with the same key the server verifies with:
`VOICEAGENT_AUTH_SECRET` (from the environment or `.env`), or `--private-key FILE` for
RS256/ES256 when the server holds the matching `VOICEAGENT_AUTH_PUBLIC_KEY`.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

# The algorithms tokens.py accepts with a public key; named here so that building the
# command line does not import the JWT and crypto libraries (tests/access checks both agree).
KEY_ALGORITHMS = ("RS256", "ES256")

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_s(text: str) -> float:
    """`90`, `90s`, `10m`, `2h`, `1d` → seconds."""
    match = _DURATION.match(text.strip())
    if match is None or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 10m or 2h")
    return float(match.group(1)) * _UNITS[match.group(2)]


def add_token_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = commands.add_parser("token", help="mint a room token", description=__doc__)
    token.add_argument("--sub", required=True, help="the user the token is for")
    token.add_argument("--room", required=True, help="a session id, or a prefix ending in *")
    token.add_argument("--ttl", type=duration_s, default=600.0, help="lifetime (default 10m)")
    token.add_argument("--max-duration", type=duration_s, help="longest session it allows")
    token.add_argument("--no-text", action="store_true", help="the holder may not type")
    token.add_argument("--no-audio", action="store_true", help="the holder may not speak")
    token.add_argument("--admin", action="store_true", help="may replace anyone's room")
    token.add_argument("--private-key", type=Path, help="PEM private key (RS256/ES256)")
    token.add_argument("--algorithm", choices=KEY_ALGORITHMS, default="RS256")


def run_token_command(args: argparse.Namespace, secret: str) -> int:
    if "*" in args.room[:-1]:
        print("voiceagent: --room takes an id or one prefix ending in *", file=sys.stderr)
        return 2
    if args.private_key is not None:
        try:
            key, algorithm = args.private_key.read_text(), args.algorithm
        except OSError as exc:
            print(f"voiceagent: cannot read {args.private_key}: {exc.strerror}", file=sys.stderr)
            return 2
    elif secret:
        key, algorithm = secret, "HS256"
    else:
        print(
            "voiceagent: set VOICEAGENT_AUTH_SECRET (environment or .env) or give --private-key",
            file=sys.stderr,
        )
        return 2
    from voiceagent.access.tokens import mint_token

    try:
        token = mint_token(
            key,
            sub=args.sub,
            room=args.room,
            ttl_s=args.ttl,
            algorithm=algorithm,
            text=not args.no_text,
            audio=not args.no_audio,
            max_duration_s=args.max_duration,
            admin=args.admin,
        )
    except (ValueError, TypeError) as exc:  # a key that does not fit the algorithm
        print(f"voiceagent: cannot sign with that key: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0
