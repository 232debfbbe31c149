"""The ``wootbridge`` command: accounts, migrations, and the all-in-one dev runner."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from app.config import get_settings
from app.logs import configure_logging

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
