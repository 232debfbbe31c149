"""JSON shapes and error answers of the fake Chatwoot, modelled on Chatwoot's views.

Sources (chatwoot/chatwoot): app/views/api/v1/models/_inbox.json.jbuilder, _contact, _contact_inbox,
_message, _user; app/views/api/v1/conversations/partials/_conversation.json.jbuilder;
app/controllers/concerns/request_exception_handler.rb for the error bodies.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from starlette.responses import JSONResponse, PlainTextResponse, Response

MESSAGE_TYPES = {"incoming": 0, "outgoing": 1, "activity": 2, "template": 3}

NOT_FOUND = "Resource could not be found"
NOT_AUTHORIZED_ACTION = "You are not authorized to do this action"
NOT_AUTHORIZED_ACCOUNT = "You are not authorized to access this account"
INVALID_TOKEN = "Invalid Access Token"
SIGN_IN = "You need to sign in or sign up before continuing."


class ApiError(Exception):
    """An error answer; ``body`` is what Chatwoot would render for it."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def not_found() -> ApiError:
    """``ActiveRecord::RecordNotFound`` as rendered by ``handle_with_exception``."""
    return ApiError(404, {"error": NOT_FOUND})


def unauthorized(message: str) -> ApiError:
    """``render_unauthorized``: Pundit refusals and foreign accounts are 401, not 403."""
    return ApiError(401, {"error": message})


def could_not_create(message: str) -> ApiError:
    """``render_could_not_create_error`` (e.g. a ``StandardError`` in MessageBuilder)."""
    return ApiError(422, {"error": message})


def record_invalid(errors: list[tuple[str, str]]) -> ApiError:
    """``render_record_invalid``: full messages joined by ', ' plus the attribute names."""
    return ApiError(
        422,
        {
            "message": ", ".join(message for _, message in errors),
            "attributes": list(dict.fromkeys(attr for attr, _ in errors)),
        },
    )


def fault_body(status: int) -> tuple[Any, str]:
    """A default body (and media type) that looks like what sits in front of Chatwoot."""
    if status == 429:  # Rack::Attack's throttled response
        return "Retry later\n", "text/plain"
    if status in (502, 503, 504):  # a proxy (nginx, Heroku router) answering for Chatwoot
        phrase = f"{status} {HTTPStatus(status).phrase}"
        return (
            f"<html><head><title>{phrase}</title></head><body><h1>{phrase}</h1></body></html>",
            "text/html",
        )
    if status >= 500:
        return {"status": status, "error": "Internal Server Error"}, "application/json"
    known = {
        401: {"error": INVALID_TOKEN},
        404: {"error": NOT_FOUND},
        422: {"message": "Validation failed", "attributes": []},
    }
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return known.get(status, {"error": phrase}), "application/json"


def to_response(result: Any) -> Response:
    """A handler's ``(status, body)`` (or ready Response) as an HTTP response."""
    if isinstance(result, Response):
        return result
    status, body = result
    if body is None:
        return Response(status_code=status)
    if isinstance(body, bytes):
        return Response(body, status, media_type="application/octet-stream")
    if isinstance(body, str):
        return PlainTextResponse(body, status)
    return JSONResponse(body, status)


def fault_response(status: int, body: Any) -> Response:
    """An injected fault: the given body, or what Chatwoot (or its proxy) would send."""
    if body is not None:
        return to_response((status, body))
    default, media_type = fault_body(status)
    if media_type == "application/json":
        return JSONResponse(default, status)
    return Response(default, status, media_type=media_type)


def inbox_json(inbox: dict[str, Any], administrator: bool) -> dict[str, Any]:
    """An API-channel inbox; ``hmac_token`` and ``secret`` are shown to administrators only."""
    out: dict[str, Any] = {
        "id": inbox["id"],
        "avatar_url": "",
        "channel_id": inbox["channel_id"],
        "name": inbox["name"],
        "channel_type": inbox["channel_type"],
        "greeting_enabled": inbox["greeting_enabled"],
        "greeting_message": inbox["greeting_message"],
        "working_hours_enabled": False,
        "enable_email_collect": True,
        "csat_survey_enabled": False,
        "enable_auto_assignment": inbox["enable_auto_assignment"],
        "auto_assignment_config": {},
        "out_of_office_message": None,
        "working_hours": [],
        "timezone": inbox["timezone"],
        "callback_webhook_url": None,
        "allow_messages_after_resolved": True,
        "lock_to_single_conversation": inbox["lock_to_single_conversation"],
        "sender_name_type": "friendly",
        "business_name": None,
        "widget_color": None,
        "website_url": None,
        "hmac_mandatory": inbox["hmac_mandatory"],
        "welcome_title": None,
        "welcome_tagline": None,
        "web_widget_script": None,
        "website_token": None,
        "selected_feature_flags": None,
        "reply_time": None,
        "messaging_service_sid": None,
        "phone_number": None,
    }
    if administrator:
        out["hmac_token"] = inbox["hmac_token"]
        out["secret"] = inbox["secret"]
    out.update(
        webhook_url=inbox["webhook_url"],
        inbox_identifier=inbox["inbox_identifier"],
        additional_attributes=inbox["additional_attributes"],
        provider=None,
    )
    return out


def inbox_slim(inbox: dict[str, Any]) -> dict[str, Any]:
    """The raw Inbox record as ``contacts/create.json.jbuilder`` embeds it."""
    keys = (
        "id",
        "channel_id",
        "account_id",
        "name",
        "channel_type",
        "created_at",
        "enable_auto_assignment",
        "greeting_enabled",
        "greeting_message",
        "lock_to_single_conversation",
        "timezone",
    )
    return {k: inbox[k] for k in keys}


def contact_inbox_json(ci: dict[str, Any], inbox: dict[str, Any]) -> dict[str, Any]:
    """``_contact_inbox.json.jbuilder``: the source id plus the full inbox."""
    return {"source_id": ci["source_id"], "inbox": inbox_json(inbox, administrator=False)}


def contact_json(
    contact: dict[str, Any], inboxes: list[tuple[dict[str, Any], dict[str, Any]]]
) -> dict[str, Any]:
    """``_contact.json.jbuilder`` with ``with_contact_inboxes: true``."""
    keys = (
        "additional_attributes",
        "email",
        "id",
        "name",
        "phone_number",
        "identifier",
        "blocked",
        "custom_attributes",
        "last_activity_at",
        "created_at",
    )
    out = {k: contact[k] for k in keys}
    out.update(availability_status="offline", thumbnail="")
    out["contact_inboxes"] = [contact_inbox_json(ci, inbox) for ci, inbox in inboxes]
    return out


def contact_sender(contact: dict[str, Any]) -> dict[str, Any]:
    """``Contact#push_event_data``."""
    return {
        "additional_attributes": contact["additional_attributes"],
        "custom_attributes": contact["custom_attributes"],
        "email": contact["email"],
        "id": contact["id"],
        "identifier": contact["identifier"],
        "name": contact["name"],
        "phone_number": contact["phone_number"],
        "thumbnail": "",
        "blocked": contact["blocked"],
        "type": "contact",
    }


def user_sender(user: dict[str, Any]) -> dict[str, Any]:
    """``User#push_event_data``."""
    return {
        "id": user["id"],
        "name": user["name"],
        "available_name": user["name"],
        "avatar_url": "",
        "type": "user",
        "availability_status": "online",
        "thumbnail": "",
    }


def blob_url(base_url: str, attachment: dict[str, Any], kind: str = "blobs") -> str:
    """Where the fake serves an attachment, shaped like an ActiveStorage redirect URL."""
    name = quote(attachment["filename"])
    return f"{base_url}/rails/active_storage/{kind}/redirect/{attachment['signed_id']}/{name}"


def attachment_json(att: dict[str, Any], message: dict[str, Any], base_url: str) -> dict[str, Any]:
    """``Attachment#push_event_data`` for a file attachment."""
    extension = att["filename"].rsplit(".", 1)[-1] if "." in att["filename"] else None
    thumb = blob_url(base_url, att, "representations") if att["file_type"] == "image" else ""
    return {
        "id": att["id"],
        "message_id": message["id"],
        "file_type": att["file_type"],
        "account_id": message["account_id"],
        "extension": extension,
        "content_type": att["content_type"],
        "data_url": blob_url(base_url, att),
        "thumb_url": thumb,
        "file_size": len(att["data"]),
        "width": None,
        "height": None,
    }


def message_json(
    message: dict[str, Any], display_id: int, sender: dict[str, Any] | None, base_url: str
) -> dict[str, Any]:
    """``_message.json.jbuilder``: ``conversation_id`` is the display id, type an integer."""
    out: dict[str, Any] = {
        "id": message["id"],
        "content": message["content"],
        "account_id": message["account_id"],
        "inbox_id": message["inbox_id"],
        "conversation_id": display_id,
        "message_type": MESSAGE_TYPES[message["message_type"]],
        "content_type": message["content_type"],
        "status": message["status"],
        "content_attributes": message["content_attributes"],
        "created_at": message["created_at"],
        "private": message["private"],
        "source_id": message["source_id"],
        "sender_type": message["sender_type"],
        "sender_id": message["sender_id"],
    }
    if message["echo_id"] is not None:
        out["echo_id"] = message["echo_id"]
    if sender is not None:
        out["sender"] = sender
    if message["attachments"]:
        out["attachments"] = [attachment_json(a, message, base_url) for a in message["attachments"]]
    return out


def conversation_json(
    conv: dict[str, Any],
    contact: dict[str, Any],
    channel_type: str,
    last_message: dict[str, Any] | None,
) -> dict[str, Any]:
    """``conversations/partials/_conversation.json.jbuilder``: ``id`` is the display id."""
    return {
        "meta": {
            "sender": contact_sender(contact),
            "channel": channel_type,
            "hmac_verified": False,
        },
        "id": conv["display_id"],
        "messages": [last_message] if last_message else [],
        "account_id": conv["account_id"],
        "uuid": conv["uuid"],
        "additional_attributes": conv["additional_attributes"],
        "agent_last_seen_at": 0,
        "assignee_last_seen_at": 0,
        "can_reply": True,
        "contact_last_seen_at": 0,
        "custom_attributes": conv["custom_attributes"],
        "inbox_id": conv["inbox_id"],
        "labels": [],
        "muted": conv["muted"],
        "snoozed_until": conv["snoozed_until"],
        "status": conv["status"],
        "created_at": conv["created_at"],
        "timestamp": conv["last_activity_at"],
        "first_reply_created_at": 0,
        "unread_count": 0,
        "last_non_activity_message": last_message,
        "last_activity_at": conv["last_activity_at"],
        "priority": None,
        "waiting_since": 0,
        "sla_policy_id": None,
    }


def profile_json(user: dict[str, Any], accounts: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """``_user.json.jbuilder`` (GET /api/v1/profile); includes the caller's own token."""
    memberships = [
        {
            "id": account_id,
            "name": accounts[account_id]["name"],
            "status": "active",
            "active_at": None,
            "role": role,
            "permissions": [role],
            "availability": "online",
            "availability_status": "online",
            "auto_offline": True,
            "custom_role_id": None,
            "custom_role": None,
        }
        for account_id, role in user["roles"].items()
        if account_id in accounts
    ]
    first = memberships[0] if memberships else None
    return {
        "access_token": user["access_token"],
        "account_id": first["id"] if first else None,
        "available_name": user["name"],
        "avatar_url": "",
        "confirmed": True,
        "display_name": None,
        "message_signature": None,
        "email": user["email"],
        "id": user["id"],
        "inviter_id": None,
        "name": user["name"],
        "provider": "email",
        "pubsub_token": user["pubsub_token"],
        "role": first["role"] if first else None,
        "ui_settings": {},
        "uid": user["email"],
        "type": "User",
        "accounts": memberships,
    }
