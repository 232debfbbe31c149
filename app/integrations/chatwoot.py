"""Chatwoot Application API client: one method per endpoint Wootbridge uses.

Methods return Chatwoot's parsed JSON. Where Chatwoot wraps the answer in ``{"payload": ...}``
the method returns the payload (documented per method). Failures raise the typed errors of
:mod:`app.integrations.errors`.

Retries (DESIGN invariant 2): reads, updates and the filter POST are retried on any transient
error. Creating POSTs (inbox, contact, contact inbox, conversation, message) are retried only
when Chatwoot surely did not process them (connect failure, 429, 503); after a read timeout or
another 5xx the error is raised at once and the caller checks before posting again.

The API token travels only in the ``api_access_token`` header; it is kept out of ``repr``,
exceptions and logs (redacted should Chatwoot ever echo it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from app.integrations.errors import (
    RemoteBadResponse,
    RemoteError,
    RemoteNotFound,
    error_from_response,
    error_from_transport,
    is_safe_to_resend,
    is_transient,
)
from app.integrations.files import File
from app.integrations.http import read_timeout, transient_retry

__all__ = ["ChatwootClient", "JSONDict", "account_role"]

JSONDict = dict[str, Any]


def account_role(profile: Mapping[str, Any], account_id: int) -> str | None:
    """The user's role (``administrator`` / ``agent``) on ``account_id`` per the profile, or None
    when the profile does not list that account."""
    for account in profile.get("accounts") or ():
        if not isinstance(account, Mapping):
            continue
        try:
            same = int(account.get("id", -1)) == account_id
        except (TypeError, ValueError):
            continue
        if same:
            role = account.get("role")
            return str(role) if role is not None else None
    return None


def _payload(body: Any) -> Any:
    """``body["payload"]`` when Chatwoot wrapped the answer, else ``body``."""
    if isinstance(body, dict) and "payload" in body:
        return body["payload"]
    return body


def _as_dict(value: Any, what: str) -> JSONDict:
    if not isinstance(value, dict):
        raise RemoteBadResponse(f"expected a JSON object for {what}, got {type(value).__name__}")
    return value


def _as_list(value: Any, what: str) -> list[JSONDict]:
    if not isinstance(value, list):
        raise RemoteBadResponse(f"expected a JSON array for {what}, got {type(value).__name__}")
    return value


def _without_none(fields: Mapping[str, Any]) -> JSONDict:
    return {key: value for key, value in fields.items() if value is not None}


class ChatwootClient:
    """A Chatwoot account seen through one user's API access token."""

    def __init__(
        self,
        base_url: str,
        account_id: int,
        api_token: str,
        *,
        http: httpx.Client,
        retry_attempts: int = 3,
        retry_max_wait: float = 2.0,
        timeout: float | None = None,
    ) -> None:
        """``timeout`` (seconds) bounds reading one answer; ``None`` keeps the client's own."""
        self.base_url = base_url.rstrip("/")
        self.account_id = account_id
        self.__token = api_token
        self._http = http
        self._retry_attempts = retry_attempts
        self._retry_max_wait = retry_max_wait
        self._timeout = read_timeout(http, timeout)

    def __repr__(self) -> str:
        return f"ChatwootClient(base_url={self.base_url!r}, account_id={self.account_id!r})"

    # --- plumbing -------------------------------------------------------------------------------

    def _account_path(self, path: str) -> str:
        return f"/api/v1/accounts/{self.account_id}{path}"

    def _send_once(self, method: str, path: str, options: Mapping[str, Any]) -> Any:
        """One HTTP exchange: the parsed JSON body, or a typed :class:`RemoteError`.

        Transport errors are raised outside the ``except`` block so the httpx exception, whose
        ``request`` holds our headers, is neither ``__cause__`` nor ``__context__``.
        """
        failure: RemoteError | None = None
        if self._timeout is not None and "timeout" not in options:
            options = {**options, "timeout": self._timeout}
        try:
            resp = self._http.request(
                method,
                self.base_url + path,
                headers={"api_access_token": self.__token, "Accept": "application/json"},
                **options,
            )
        except httpx.HTTPError as exc:
            failure = error_from_transport(exc)
        if failure is not None:
            raise failure
        if not resp.is_success:
            raise error_from_response(resp, secrets=(self.__token,))
        if not resp.content.strip():
            return {}
        try:
            return resp.json()
        except ValueError:
            raise RemoteBadResponse(
                f"{method} {path} answered {resp.status_code} with a body that is not JSON"
            ) from None

    def _call(self, method: str, path: str, *, creating: bool = False, **options: Any) -> Any:
        """Send with the retry rule for this kind of request (see the module docstring)."""
        retrying = transient_retry(
            self._retry_attempts,
            self._retry_max_wait,
            retry_if=is_safe_to_resend if creating else is_transient,
        )
        return retrying(self._send_once, method, path, options)

    # --- profile --------------------------------------------------------------------------------

    def get_profile(self) -> JSONDict:
        """``GET /api/v1/profile``: the token's user, with ``accounts[{id, role, ...}]``.

        The profile's ``access_token`` (our own token) is removed from the returned dict.
        """
        profile = _as_dict(self._call("GET", "/api/v1/profile"), "profile")
        profile.pop("access_token", None)
        return profile

    # --- inboxes --------------------------------------------------------------------------------

    def get_inbox(self, inbox_id: int) -> JSONDict:
        """``GET .../inboxes/{id}``: the inbox object (``id``, ``name``, ``webhook_url``...)."""
        return _as_dict(self._call("GET", self._account_path(f"/inboxes/{inbox_id}")), "inbox")

    def list_inboxes(self) -> list[JSONDict]:
        """``GET .../inboxes``: the inbox objects (unwrapped from ``payload``)."""
        body = self._call("GET", self._account_path("/inboxes"))
        return _as_list(_payload(body), "inboxes")

    def create_api_inbox(self, name: str, webhook_url: str) -> JSONDict:
        """``POST .../inboxes``: a new API-channel inbox; returns the inbox object."""
        body = {"name": name, "channel": {"type": "api", "webhook_url": webhook_url}}
        result = self._call("POST", self._account_path("/inboxes"), creating=True, json=body)
        return _as_dict(result, "inbox")

    def update_api_inbox(self, inbox_id: int, name: str, webhook_url: str) -> JSONDict:
        """``PATCH .../inboxes/{id}``: rename and re-point the webhook; returns the inbox."""
        body = {"name": name, "channel": {"webhook_url": webhook_url}}
        result = self._call("PATCH", self._account_path(f"/inboxes/{inbox_id}"), json=body)
        return _as_dict(result, "inbox")

    def set_inbox_additional_attributes(
        self, inbox_id: int, attributes: Mapping[str, Any]
    ) -> JSONDict:
        """``PATCH .../inboxes/{id}`` with ``channel.additional_attributes``: an API channel's
        settings (``message_templates`` for the template picker, ``agent_reply_time_window``
        in hours). Chatwoot *replaces* the channel's whole ``additional_attributes`` with the
        given object (``channel.update!``, ``Channel::Api::EDITABLE_ATTRS``), so pass every key
        to keep, as ``get_inbox`` shows them (``additional_attributes``); returns the inbox."""
        body = {"channel": {"additional_attributes": dict(attributes)}}
        result = self._call("PATCH", self._account_path(f"/inboxes/{inbox_id}"), json=body)
        return _as_dict(result, "inbox")

    # --- contacts -------------------------------------------------------------------------------

    def filter_contact_inbox(self, inbox_id: int, source_id: str) -> JSONDict | None:
        """``POST .../contact_inboxes/filter``: the contact owning the contact inbox with this
        ``source_id`` in the inbox (``{"id", "name", "phone_number", "contact_inboxes": [...]}``,
        as Chatwoot renders it), or None when there is none (404, empty body)."""
        body = {"inbox_id": inbox_id, "source_id": source_id}
        try:
            result = self._call("POST", self._account_path("/contact_inboxes/filter"), json=body)
        except RemoteNotFound:
            return None
        return _as_dict(_payload(result), "contact inbox")

    def create_contact(
        self,
        inbox_id: int,
        source_id: str,
        name: str,
        phone_number: str | None,
        identifier: str | None = None,
        avatar_url: str | None = None,
        custom_attributes: Mapping[str, Any] | None = None,
        additional_attributes: Mapping[str, Any] | None = None,
    ) -> JSONDict:
        """``POST .../contacts`` with a contact inbox for ``source_id``.

        Returns ``{"contact": {...}, "contact_inbox": {"source_id", "inbox": {...}}}`` (Chatwoot's
        ``payload``). A duplicate phone number or identifier is ``RemoteUnprocessable`` (422).
        """
        body = _without_none(
            {
                "inbox_id": inbox_id,
                "source_id": source_id,
                "name": name,
                "phone_number": phone_number,
                "identifier": identifier,
                "avatar_url": avatar_url,
                "custom_attributes": dict(custom_attributes) if custom_attributes else None,
                "additional_attributes": (
                    dict(additional_attributes) if additional_attributes else None
                ),
            }
        )
        result = self._call("POST", self._account_path("/contacts"), creating=True, json=body)
        return _as_dict(_payload(result), "contact")

    def update_contact(self, contact_id: int, fields: Mapping[str, Any]) -> JSONDict:
        """``PUT .../contacts/{id}``: set the given fields (``phone_number``, ``name``,
        ``additional_attributes`` — merged into the stored ones by Chatwoot); returns the
        contact (unwrapped). A phone number another contact has is ``RemoteUnprocessable``."""
        path = self._account_path(f"/contacts/{contact_id}")
        return _as_dict(_payload(self._call("PUT", path, json=dict(fields))), "contact")

    def search_contacts(self, query: str) -> list[JSONDict]:
        """``GET .../contacts/search?q=``: matching contacts (first page, unwrapped)."""
        body = self._call("GET", self._account_path("/contacts/search"), params={"q": query})
        return _as_list(_payload(body), "contacts")

    def get_contact(self, contact_id: int) -> JSONDict:
        """``GET .../contacts/{id}``: the contact (unwrapped), with ``contact_inboxes``."""
        body = self._call("GET", self._account_path(f"/contacts/{contact_id}"))
        return _as_dict(_payload(body), "contact")

    def create_contact_inbox(self, contact_id: int, inbox_id: int, source_id: str) -> JSONDict:
        """``POST .../contacts/{id}/contact_inboxes``: returns the contact inbox
        (``{"source_id", "inbox": {...}, ...}``)."""
        path = self._account_path(f"/contacts/{contact_id}/contact_inboxes")
        body = {"inbox_id": inbox_id, "source_id": source_id}
        return _as_dict(self._call("POST", path, creating=True, json=body), "contact inbox")

    def list_contact_conversations(self, contact_id: int) -> list[JSONDict]:
        """``GET .../contacts/{id}/conversations``: the contact's conversations (unwrapped)."""
        body = self._call("GET", self._account_path(f"/contacts/{contact_id}/conversations"))
        return _as_list(_payload(body), "conversations")

    # --- conversations --------------------------------------------------------------------------

    def create_conversation(
        self, inbox_id: int, contact_id: int, source_id: str, status: str | None = None
    ) -> JSONDict:
        """``POST .../conversations``: returns the conversation; its ``id`` is the display id
        used in every conversation URL."""
        fields = {"source_id": source_id, "inbox_id": inbox_id, "contact_id": contact_id}
        body = _without_none({**fields, "status": status})
        result = self._call("POST", self._account_path("/conversations"), creating=True, json=body)
        return _as_dict(result, "conversation")

    def get_conversation(self, conversation_id: int) -> JSONDict:
        """``GET .../conversations/{id}``: the conversation (``status``, ``inbox_id``, ...)."""
        path = self._account_path(f"/conversations/{conversation_id}")
        return _as_dict(self._call("GET", path), "conversation")

    def toggle_conversation_status(self, conversation_id: int, status: str) -> JSONDict:
        """``POST .../conversations/{id}/toggle_status``: returns the unwrapped
        ``{"success", "current_status", "conversation_id"}``. Setting a status is idempotent."""
        path = self._account_path(f"/conversations/{conversation_id}/toggle_status")
        return _as_dict(_payload(self._call("POST", path, json={"status": status})), "status")

    # --- messages -------------------------------------------------------------------------------

    def create_message(
        self,
        conversation_id: int,
        *,
        content: str,
        message_type: str,
        source_id: str | None = None,
        private: bool = False,
        content_attributes: Mapping[str, Any] | None = None,
        attachments: Sequence[File] = (),
    ) -> JSONDict:
        """``POST .../conversations/{id}/messages``: returns the message (``id``, ``source_id``,
        ``attachments``...). JSON without attachments; multipart/form-data with them.

        Chatwoot does not de-duplicate ``source_id``: never call this again after a failure
        unless :func:`errors.is_safe_to_resend` holds or a lookup found no message.
        """
        path = self._account_path(f"/conversations/{conversation_id}/messages")
        fields = _without_none(
            {
                "content": content,
                "message_type": message_type,
                "private": private,
                "source_id": source_id,
                "content_attributes": dict(content_attributes) if content_attributes else None,
            }
        )
        if not attachments:
            result = self._call("POST", path, creating=True, json=fields)
        else:
            result = self._call(
                "POST", path, creating=True, data=_form_fields(fields), files=_files(attachments)
            )
        return _as_dict(result, "message")

    def list_messages(self, conversation_id: int, before: int | None = None) -> list[JSONDict]:
        """``GET .../conversations/{id}/messages[?before=]``: a page of messages, oldest first
        (unwrapped from ``payload``)."""
        path = self._account_path(f"/conversations/{conversation_id}/messages")
        params = {"before": before} if before is not None else None
        return _as_list(_payload(self._call("GET", path, params=params)), "messages")

    def update_message_status(
        self,
        conversation_id: int,
        message_id: int,
        status: str,
        external_error: str | None = None,
    ) -> JSONDict:
        """``PATCH .../conversations/{c}/messages/{m}`` (API inboxes): set ``sent`` /
        ``delivered`` / ``read`` / ``failed`` (with ``external_error``); returns the message."""
        path = self._account_path(f"/conversations/{conversation_id}/messages/{message_id}")
        body = _without_none({"status": status, "external_error": external_error})
        return _as_dict(self._call("PATCH", path, json=body), "message")


def _form_fields(fields: Mapping[str, Any]) -> dict[str, str]:
    """Multipart form values: booleans as ``true``/``false``, objects as JSON strings."""
    form: dict[str, str] = {}
    for key, value in fields.items():
        if isinstance(value, bool):
            form[key] = "true" if value else "false"
        elif isinstance(value, dict | list):
            form[key] = json.dumps(value)
        else:
            form[key] = str(value)
    return form


def _files(attachments: Sequence[File]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("attachments[]", (a.filename, a.data, a.content_type)) for a in attachments]
