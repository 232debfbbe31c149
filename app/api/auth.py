"""Who is calling: an account token or an instance token (API.md, Authentication)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import Headers, QueryParams
from starlette.requests import Request

from app.api.errors import INSTANCE_NOT_FOUND, ApiError
from app.api.names import INSTANCE_NAME
from app.store.ids import hash_token
from app.store.models import Account, Instance

MISSING_TOKEN = "Missing token in header, Authorization header, or query parameter"  # noqa: S105 (a message, not a secret)
INVALID_TOKEN = "Invalid token"  # noqa: S105
WRONG_INSTANCE = "Instance token does not match this instance"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller. ``instance`` is set for instance tokens only."""

    account: Account
    instance: Instance | None = None

    @property
    def is_account(self) -> bool:
        return self.instance is None


def presented_token(headers: Headers, query: QueryParams) -> str | None:
    """The token from ``token:``, ``Authorization: Bearer`` or ``?token=``, in that order."""
    token = headers.get("token")
    if not token:
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            token = credentials
    if not token:
        token = query.get("token")
    token = (token or "").strip()
    return token or None


def request_token(request: Request) -> str | None:
    return presented_token(request.headers, request.query_params)


def authenticate(token: str | None) -> Principal:
    """Resolve a token (call inside a database connection)."""
    if token is None:
        raise ApiError(401, MISSING_TOKEN)
    digest = hash_token(token)
    account = Account.get_or_none(Account.token_hash == digest)
    if account is not None:
        return Principal(account=account)
    instance = (
        Instance.select(Instance, Account)
        .join(Account)
        .where(Instance.token_hash == digest)
        .first()
    )
    if instance is None:
        raise ApiError(401, INVALID_TOKEN)
    return Principal(account=instance.account, instance=instance)


def require_account_token(principal: Principal) -> Account:
    if not principal.is_account:
        raise ApiError(403, WRONG_INSTANCE)
    return principal.account


def resolve_instance(principal: Principal, name: str) -> Instance:
    """The named instance if the caller may use it; another account's is a plain 404."""
    if principal.instance is not None:
        if principal.instance.name != name:
            raise ApiError(403, WRONG_INSTANCE)
        return principal.instance
    if INSTANCE_NAME.fullmatch(name) is None:  # client text never reaches the query
        raise ApiError(404, INSTANCE_NOT_FOUND)
    instance = Instance.get_or_none(
        (Instance.account == principal.account) & (Instance.name == name)
    )
    if instance is None:
        raise ApiError(404, INSTANCE_NOT_FOUND)
    return instance
