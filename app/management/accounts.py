"""Accounts: the tenants. Each has a token, stored only as its hash."""

from __future__ import annotations

from app.store.db import database
from app.store.ids import hash_token, new_id, new_token
from app.store.models import Account


def create_account(name: str) -> tuple[Account, str]:
    """Create an account; returns it with its plaintext token (never stored)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ValueError("account name must be 1 to 200 characters")
    token = new_token()
    with database.atomic():
        account = Account.create(id=new_id("acc"), name=name, token_hash=hash_token(token))
    return account, token
