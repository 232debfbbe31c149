"""The ``wootbridge`` command: accounts, migrations, and the all-in-one dev runner."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from app.config import get_settings
from app.logs import configure_logging

if TYPE_CHECKING:
    from app.store.models import ChatwootIntegration

logger = logging.getLogger("wootbridge")


def cmd_migrate(args: argparse.Namespace) -> int:
    from app.store import init_store, migrate
    from app.store.db import describe

    settings = get_settings()
    migrate(init_store(settings))
    logger.info("database ready at %s", describe(settings.database_url))
    return 0


def cmd_account_create(args: argparse.Namespace) -> int:
    from app.management.accounts import create_account
    from app.store import init_store, migrate

    db = init_store(get_settings())
    migrate(db)
    with db.connection_context():
        account, token = create_account(args.name)
    print(
        f"account {account.id} ({account.name}) created; its token is shown once:", file=sys.stderr
    )
    print(token)
    return 0


def cmd_rotate_key(args: argparse.Namespace) -> int:
    from app.management.key_rotation import rotate_keys
    from app.store import init_store
    from app.store.models import SecretsUnavailable, get_cipher

    db = init_store(get_settings())
    try:
        cipher = get_cipher()
    except SecretsUnavailable as exc:
        print(f"rotate-key: {exc}", file=sys.stderr)
        return 2
    with db.connection_context():
        report = rotate_keys(cipher, batch_size=args.batch_size, max_rows=args.max_rows)
    print(report.summary())
    for problem in report.unreadable:
        print(f"cannot re-encrypt {problem}", file=sys.stderr)
    return 0 if report.ok else 1


@contextlib.contextmanager
def _connected() -> Iterator[None]:
    """The configured database, connected for one command."""
    from app.store import init_store

    with init_store(get_settings()).connection_context():
        yield


def _integration_or_report(instance: str) -> ChatwootIntegration | None:
    """The instance's integration, or ``None`` after saying why on stderr."""
    from app.management import failed_events

    try:
        return failed_events.integration_named(instance)
    except LookupError as exc:
        print(exc, file=sys.stderr)
        return None


def cmd_failed(args: argparse.Namespace) -> int:
    """Print a page of the instance's failed events, newest first."""
    from app.management import failed_events

    with _connected():
        integration = _integration_or_report(args.instance)
        if integration is None:
            return 1
        page = failed_events.list_failed(integration, args.direction, args.limit, args.before)
    rows = [
        (str(e.id), e.direction, e.chat, e.kind, str(e.attempts), e.last_attempt_at, e.reason)
        for e in page.events
    ]
    header = ("ID", "DIRECTION", "CHAT", "KIND", "ATTEMPTS", "LAST ATTEMPT", "REASON")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        print("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]))
    print(f"{len(rows)} failed events", file=sys.stderr)
    if page.next_before is not None:
        print(f"more: --before {page.next_before}", file=sys.stderr)
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    """Failed events back to pending; the workers' recovery sweep (every 10 s) delivers them."""
    from app.management import failed_events

    with _connected():
        integration = _integration_or_report(args.instance)
        if integration is None:
            return 1
        result = failed_events.retry_failed(integration, args.ids or None)
    print(f"{result.retrying} events back to pending; the workers relay them within about 10 s")
    if result.skipped:
        skipped = " ".join(str(i) for i in result.skipped)
        print(f"skipped (unknown or not failed): {skipped}", file=sys.stderr)
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    """Erase the message content of events older than ``RETENTION_DAYS`` now (the workers do
    it hourly); prints what was erased."""
    from app.management.retention import purge
    from app.store import init_store

    settings = get_settings()
    db = init_store(settings)
    with db.connection_context():
        result = purge(settings.retention_days)
    print(result.summary())
    return 0


def _event_id(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) < 2**63:
        raise argparse.ArgumentTypeError(f"not an event id: {text!r}")
    return int(text)


def _limit(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 200:
        raise argparse.ArgumentTypeError("must be an integer from 1 to 200")
    return int(text)


def cmd_dev(args: argparse.Namespace) -> int:
    from app.devserver import run_dev

    return run_dev(host=args.host, port=args.port, threads=args.threads)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wootbridge", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    migrate = commands.add_parser("migrate", help="create or update the database tables")
    migrate.set_defaults(func=cmd_migrate)

    account = commands.add_parser("account", help="manage accounts")
    account_commands = account.add_subparsers(dest="account_command", required=True)
    create = account_commands.add_parser("create", help="create an account; prints its token")
    create.add_argument("name")
    create.set_defaults(func=cmd_account_create)

    rotate = commands.add_parser(
        "rotate-key",
        help="re-encrypt every stored secret under ENCRYPTION_KEY (old keys in "
        "ENCRYPTION_KEYS_OLD); safe while the service runs, resumable",
    )
    rotate.add_argument("--batch-size", type=int, default=100, help="rows read per batch")
    rotate.add_argument(
        "--max-rows", type=int, default=None, help="stop after this many rows (run again to go on)"
    )
    rotate.set_defaults(func=cmd_rotate_key)

    failed = commands.add_parser("failed", help="list an instance's failed events, newest first")
    failed.add_argument("instance")
    failed.add_argument("--direction", choices=["inbound", "outbound"])
    failed.add_argument("--limit", type=_limit, default=50, help="1 to 200 (default 50)")
    failed.add_argument("--before", type=_event_id, help="only events older than this id")
    failed.set_defaults(func=cmd_failed)

    retry = commands.add_parser(
        "retry", help="relay failed events again (all of the instance's, or the ids given)"
    )
    retry.add_argument("instance")
    retry.add_argument("ids", nargs="*", type=_event_id, metavar="ID")
    retry.set_defaults(func=cmd_retry)

    purge = commands.add_parser(
        "purge",
        help="erase the message content of events delivered more than RETENTION_DAYS ago "
        "(0: every delivered event so far); the workers do it hourly",
    )
    purge.set_defaults(func=cmd_purge)

    dev = commands.add_parser(
        "dev", help="run web + worker locally (SQLite, embedded Redis when REDIS_URL is unset)"
    )
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=None, help="default: $PORT or 8000")
    dev.add_argument("--threads", type=int, default=4, help="worker threads")
    dev.set_defaults(func=cmd_dev)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
