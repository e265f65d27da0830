"""Command line: ``python -m signalwire_chat.emulator``, the emulator as a process.

Prints one JSON line on stdout once listening (``rest_url``, ``space_url``, ``relay_url``,
``project_id``, ``api_token``, ``space_host``, ``port``, ``db``), logs on stderr, and
exits with status 0 on SIGINT or SIGTERM. With the same ``--db`` file, project
credentials, token keys, subscribers and messages survive restarts.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from . import DEFAULT_MAX_TEXT_LENGTH, Emulator

logger = logging.getLogger("signalwire_chat.emulator")


def _interval(text: str) -> float | None:
    if text.lower() in ("none", "off", "0"):
        return None
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be positive, or 'off'")
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def _warn_if_exposed(host: str, db: str) -> None:
    """Say what others on the network can reach when the emulator listens beyond loopback."""
    if _is_loopback(host):
        return
    kept = "in memory" if db == ":memory:" else f"in {db}"
    logger.warning(
        "listening on %s, beyond this machine: the emulator is a test stand-in with no real "
        "authentication and no TLS. Anyone who can reach it sees, in plain HTTP, the project "
        "credentials and subscriber tokens clients send, and with the API token (printed on "
        "stdout) can mint tokens for any subscriber, read every conversation and post in it. "
        "Its database (%s) holds the API token, the token signing keys and every message. "
        "Use --host 127.0.0.1 unless the network is yours alone.",
        host,
        kept,
    )


def build_parser(prog: str = "python -m signalwire_chat.emulator") -> argparse.ArgumentParser:
    """Return the argument parser of the command line (``prog`` names it in usage lines)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="A local stand-in for SignalWire's chat service (REST and relay).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--port", type=int, default=0, help="port to bind (0: pick a free one)")
    parser.add_argument("--db", default=":memory:", help="sqlite3 file (default: in memory)")
    parser.add_argument("--project-id", default=None, help="project id (default: generated)")
    parser.add_argument("--api-token", default=None, help="API token (default: generated)")
    parser.add_argument("--space-host", default="puc.emulator.test", help="host put in tokens")
    parser.add_argument("--token-ttl", type=float, default=7200.0, help="SAT lifetime, seconds")
    parser.add_argument(
        "--ping-interval", type=_interval, default=5.0, help="relay ping interval ('off': none)"
    )
    parser.add_argument("--resume-window", type=float, default=60.0, help="session resume, s")
    parser.add_argument("--event-window", type=int, default=100, help="unacked events/session")
    parser.add_argument(
        "--max-text-length", type=int, default=DEFAULT_MAX_TEXT_LENGTH, help="longest text"
    )
    parser.add_argument(
        "--idle-timeout", type=float, default=30.0, help="close connections idle this long, s"
    )
    parser.add_argument(
        "--auth-timeout", type=float, default=10.0, help="close unauthenticated relay sockets, s"
    )
    parser.add_argument("--log-level", default="INFO", help="stderr log level")
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Run the emulator until SIGINT or SIGTERM; return the exit status.

    Args:
        argv: The arguments (``sys.argv[1:]`` when None).
        prog: The program name for usage lines (``signalwire-chat emulator`` reuses this).
    """
    parser = build_parser(prog) if prog is not None else build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        emulator = Emulator(
            host=args.host,
            port=args.port,
            db=args.db,
            space_host=args.space_host,
            project_id=args.project_id,
            api_token=args.api_token,
            token_ttl=args.token_ttl,
            ping_interval=args.ping_interval,
            resume_window=args.resume_window,
            event_window=args.event_window,
            max_text_length=args.max_text_length,
            idle_timeout=args.idle_timeout,
            auth_timeout=args.auth_timeout,
        )
    except ValueError as exc:  # a value argparse let through (--port 70000, --token-ttl -5)
        parser.error(str(exc))
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    _warn_if_exposed(args.host, args.db)

    try:
        emulator.start()
    except OSError as exc:
        logger.error("cannot listen on %s:%s: %s", args.host, args.port, exc)
        emulator.close()
        return 1
    try:
        info = {
            "rest_url": emulator.rest_url,
            # What mint_subscriber_token takes as its space_url: the REST base here.
            "space_url": emulator.rest_url,
            "relay_url": emulator.relay_url,
            "project_id": emulator.project_id,
            "api_token": emulator.api_token,
            "space_host": emulator.space_host,
            "host": emulator.host,
            "port": emulator.port,
            "db": args.db,
        }
        print(json.dumps(info), flush=True)
        # A timed wait keeps the main thread responsive to signals on every platform.
        while not stop.wait(0.5):
            pass
        logger.info("signal received; stopping")
    finally:
        emulator.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
