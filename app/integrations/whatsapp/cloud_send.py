"""Sending through Meta's WhatsApp Cloud API (Graph ``/{phone-number-id}/messages``).

Text goes in one ``POST /{phone-number-id}/messages``. An attachment is uploaded first
(``POST /{phone-number-id}/media``, multipart ``file`` + ``type`` + ``messaging_product``) and
then sent by its media id; captions go to image, video and document (WhatsApp has none for
audio and stickers), a document also carries its file name. Bodies follow the v23.0 spec's
``Message`` schema (``TextMessage``, ``MediaObject``, ``StickerMessage``, ``MessageContext``).

Retries inside the call: a send is repeated only when it surely did not reach WhatsApp (connect
failure, or an error answer in :data:`RETRY_LATER_CODES`); never after a read timeout, a dropped
connection or a 5xx without Meta's verdict (:class:`SendOutcomeUnknown`), and never on the pair
rate limit (131056). An upload is repeated on any transient failure: an orphan upload is harmless
(Meta deletes unused media after 30 days), so its failures are never "outcome unknown".

Error classification (Meta's advice: branch on ``error.code`` and ``error_data.details``, not on
HTTP statuses or titles; ``error_subcode`` is deprecated; the envelope may carry ``is_transient``):

==========================================================  ====================================
``error.code`` (HTTP status)                                outcome
==========================================================  ====================================
HTTP 401; 190 token invalid/expired; 0 AuthException;       :class:`SendAuthFailure`
3 capability; 10 and 200-299 permission; 131005 access
denied; 100 with subcode 33 (the phone number id does not
exist for this token)
131056 pair rate limit                                      :class:`SendRetryLater`,
                                                            ``per_recipient=True``
131049 per-user marketing limit ("healthy ecosystem         :class:`SendRetryLater`,
engagement")                                                ``per_recipient=True``,
                                                            ``retry_after`` 24 h
1 API unknown; 2 API service; 4 too many calls; 80007 WABA  :class:`SendRetryLater`
rate limit; 130429 throughput; 131000 something went wrong;
131016 service unavailable; 131048 spam rate limit; 131057
maintenance mode; any HTTP 429, any 5xx carrying Meta's
envelope, ``is_transient: true``; a bare 503
5xx without Meta's envelope (a proxy's 502/504 page), a     :class:`SendOutcomeUnknown`
read timeout or a connection lost after sending, a success
without a message id
everything else refused with an envelope, notably: 100       :class:`SendFailure` with code and
invalid parameter, 131008 parameter missing, 131009          title (``account_level`` for 368,
parameter invalid, 131021 recipient is the sender, 131026    131031, 131042, 131045, 133010:
undeliverable, 131047 re-engagement (24 h window), 470 the   blocked, locked, payment, certificate,
On-Premises code for the same, 131030 recipient not in the   number not registered)
allowed list, 131051 unsupported type, 131052/131053 media
download/upload error, 133010 number not registered, 368
policy block, 131031 account locked, 131042 payment,
130497 country restricted, 131050 marketing opt-out,
131062 not allowed to a BSUID, 132000 template parameter
count, 132001 template missing, 132015/132016 template
paused/disabled
==========================================================  ====================================

131049 is Meta's per-user marketing template limit: the customer got enough marketing from
businesses for now. Meta's advice is to wait at least 24 hours before sending again (quoted
at dualhook.com/docs/whatsapp-error-131049 and blog.campaignhq.co/whatsapp-healthy-ecosystem-
error-131049; help.chakrahq.com suggests 12 h, 24 h, 48 h), so it waits a day, not seconds.

Pacing (:mod:`app.integrations.whatsapp.pacing`): every ``POST /{phone-number-id}/messages``
made through :meth:`CloudSender._post` (texts, media messages, templates) takes a slot of the
number's pacer first, each in-call attempt its own; a
:class:`~app.integrations.whatsapp.pacing.PacingBusy` is never retried in the call. A 130429
answer also holds the number's pacer for a second, for every process. Code that posts to the
messages endpoint by other means (read receipts, typing) takes its slot from the same pacer
(``app.relay.clients.cloud_pacer(instance).acquire()``).

Sources: Meta's v23.0 OpenAPI description (``ErrorObject``: ``message``,
``type``, ``code``, ``error_subcode``, ``is_transient``, ``error_user_title``; request schemas;
131051 is the only code it names); Meta's "Error codes" page
(developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes: handle by
``code`` and ``details``, titles only inside ``message``); copies of Meta's code table at
niswey.com/knowledge-base/error-codes-meta (1, 2, 33, 100, 130429, 131048, 368),
docs.extraaedge.com (131000, 131005, 131008, 131009, 131016, 131021, 131042, 131045, 131047),
help.hello-charles.com (131026, 131049, 131050, 130472), docs.whatstool.business (80007, 131056:
"you can still send messages to a different phone number", 368, 131031), text.com's WhatsApp
troubleshooting (0, 3, 10, 190, 200-299, 131005 = token or permission; 368, 131031 restricted;
131042 billing), learn.doubletick.io (131016 / 503 is temporary), dev.to/wapgrowai_org (130429
is per number, 131056 about one message per 6 s per customer), docs.ycloud.com (131056 proxied as
HTTP 429; ``code`` may arrive as a string); twilio.com/docs/api/errors/63016 and its WhatsApp code
mapping (470 = outside the 24 h window, On-Premises API).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from app.integrations.errors import (
    RemoteError,
    is_safe_to_resend,
    is_transient,
    parse_retry_after,
    response_detail,
)
from app.integrations.http import transient_retry
from app.integrations.whatsapp.cloud_template import OutgoingTemplate, template_object
from app.integrations.whatsapp.identifiers import is_bsuid
from app.integrations.whatsapp.pacing import Pacer, PacingBusy
from app.integrations.whatsapp.send import (
    OutgoingMedia,
    SendAuthFailure,
    SendFailure,
    SendOutcomeUnknown,
    SendResult,
    SendRetryLater,
    base_type,
    clean_text,
    outcome_of_transport_error,
    post_once,
    read_timeout,
)

__all__ = [
    "ACCOUNT_LEVEL_CODES",
    "AUTH_CODES",
    "MARKETING_LIMIT",
    "RETRY_LATER_CODES",
    "CloudSender",
    "classify_graph_error",
]

AUTH_CODES = frozenset({0, 3, 10, 190, 131005})
RETRY_LATER_CODES = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 131048, 131057})
PAIR_RATE_LIMIT = 131056
THROUGHPUT_LIMIT = 130429
THROUGHPUT_HOLD_SECONDS = 1.0
MARKETING_LIMIT = 131049
MARKETING_LIMIT_RETRY_SECONDS = 24 * 3600.0
ACCOUNT_LEVEL_CODES = frozenset({368, 131031, 131042, 131045, 133010})
CAPTIONED = frozenset({"image", "video", "document"})
_URL = re.compile(r"(?i)\bhttps?://\S")
_CODE_PREFIX = re.compile(r"^\(#\d+\)\s*")
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]+$")

T = TypeVar("T")


# --- error classification -----------------------------------------------------------------------


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _graph_error(resp: httpx.Response) -> dict[str, Any] | None:
    """Meta's ``error`` object when the body is Graph's envelope with a numeric code."""
    try:
        body = resp.json()
    except (ValueError, UnicodeDecodeError, httpx.HTTPError):
        return None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and _as_int(error.get("code")) is not None:
        return error
    return None


def _title_and_details(error: dict[str, Any], secrets: tuple[str, ...]) -> tuple[str, str | None]:
    """The title (``title``, else ``message`` without its ``(#code)`` prefix) and details."""
    raw = error.get("title") or error.get("message") or error.get("error_user_title") or ""
    title = clean_text(_CODE_PREFIX.sub("", str(raw)), secrets) or "error"
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    return title, clean_text(str(details), secrets) if details else None


def _is_auth(status: int, code: int, subcode: int | None) -> bool:
    return (
        status == 401 or code in AUTH_CODES or 200 <= code <= 299 or (code == 100 and subcode == 33)
    )


def _classify_envelope(
    resp: httpx.Response, error: dict[str, Any], secrets: tuple[str, ...]
) -> Exception:
    status = resp.status_code
    code = _as_int(error.get("code"))
    assert code is not None  # _graph_error guarantees it
    title, details = _title_and_details(error, secrets)
    text = f"{code}: {title}"
    retry_after = parse_retry_after(resp.headers.get("retry-after"))
    if _is_auth(status, code, _as_int(error.get("error_subcode"))):
        return SendAuthFailure(text, code=code)
    if code == PAIR_RATE_LIMIT:
        return SendRetryLater(text, retry_after=retry_after, per_recipient=True, code=code)
    if code == MARKETING_LIMIT:
        wait = max(retry_after or 0.0, MARKETING_LIMIT_RETRY_SECONDS)
        return SendRetryLater(text, retry_after=wait, per_recipient=True, code=code)
    if (
        code in RETRY_LATER_CODES
        or status == 429
        or status >= 500
        or error.get("is_transient") is True
    ):
        return SendRetryLater(text, retry_after=retry_after, code=code)
    return SendFailure(title, code=code, details=details, account_level=code in ACCOUNT_LEVEL_CODES)


def classify_graph_error(resp: httpx.Response, secrets: tuple[str, ...] = ()) -> Exception:
    """The send outcome of a non-2xx Graph answer (see the table in the module docstring)."""
    error = _graph_error(resp)
    if error is not None:
        return _classify_envelope(resp, error, secrets)
    status = resp.status_code
    detail = response_detail(resp, secrets)
    if status == 401:
        return SendAuthFailure(f"HTTP 401: {detail}")
    if status in (429, 503):
        retry_after = parse_retry_after(resp.headers.get("retry-after"))
        return SendRetryLater(f"HTTP {status}: {detail}", retry_after=retry_after)
    if status >= 500:
        return SendOutcomeUnknown(f"HTTP {status} without Meta's verdict: {detail}")
    return SendFailure(detail or f"HTTP {status}", code=status)


def _retry_send(exc: BaseException) -> bool:
    """In-call retry of a send: only when it surely did not reach WhatsApp (never when the
    pacer has no slot soon: the caller comes back later)."""
    if isinstance(exc, PacingBusy):
        return False
    if isinstance(exc, SendRetryLater):
        return not exc.per_recipient
    return is_safe_to_resend(exc)


def _retry_upload(exc: BaseException) -> bool:
    """In-call retry of an upload: any transient failure (a duplicate upload is harmless)."""
    if isinstance(exc, SendRetryLater):
        return not exc.per_recipient
    return isinstance(exc, SendOutcomeUnknown) or is_transient(exc)


# --- the sender ---------------------------------------------------------------------------------


class CloudSender:
    """Sends as one Cloud API phone number, with its access token."""

    def __init__(
        self,
        api_base_url: str,
        phone_number_id: str,
        access_token: str,
        *,
        http: httpx.Client,
        retry_attempts: int = 3,
        retry_max_wait: float = 2.0,
        timeout: float | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        """``api_base_url`` is Graph with its version (``https://graph.facebook.com/v23.0``);
        ``timeout`` (seconds) bounds reading one answer, ``None`` keeps the client's own;
        ``pacer``: the number's send pacer (every message call takes a slot), None: unpaced."""
        if not _SAFE_ID.match(phone_number_id) or phone_number_id in (".", ".."):
            raise ValueError("invalid phone number id")
        self.api_base_url = api_base_url.rstrip("/")
        self.phone_number_id = phone_number_id
        self.__token = access_token
        self._http = http
        self._retry_attempts = retry_attempts
        self._retry_max_wait = retry_max_wait
        self._timeout = read_timeout(http, timeout)
        self._pacer = pacer

    def __repr__(self) -> str:
        return (
            f"CloudSender(api_base_url={self.api_base_url!r}, "
            f"phone_number_id={self.phone_number_id!r})"
        )

    # --- public API -----------------------------------------------------------------------------

    def send_text(self, to: str, text: str, reply_to: str | None = None) -> SendResult:
        """Send a text; ``preview_url`` is on when it contains a URL."""
        body = self._envelope(to, "text", reply_to)
        body["text"] = {"body": text, "preview_url": bool(_URL.search(text))}
        return self._send(body)

    def send_template(
        self, to: str, template: OutgoingTemplate, reply_to: str | None = None
    ) -> SendResult:
        """Send a message template (its ``template`` object: ``cloud_template``)."""
        body = self._envelope(to, "template", reply_to)
        body["template"] = template_object(template)
        return self._send(body)

    def send_media(
        self,
        to: str,
        media: OutgoingMedia,
        caption: str | None = None,
        reply_to: str | None = None,
    ) -> SendResult:
        """Upload the bytes, then send them by media id (caption rules in the module docstring)."""
        media_id = self.upload_media(media)
        content: dict[str, Any] = {"id": media_id}
        if caption and media.kind in CAPTIONED:
            content["caption"] = caption
        if media.kind == "document" and media.filename:
            content["filename"] = media.filename
        body = self._envelope(to, media.kind, reply_to)
        body[media.kind] = content
        return self._send(body)

    def upload_media(self, media: OutgoingMedia) -> str:
        """``POST /{phone-number-id}/media``: the new media id. Retried on transient failures;
        raises :class:`SendRetryLater` (never :class:`SendOutcomeUnknown`) when they persist."""
        mime = base_type(media.content_type)
        options = {
            "data": {"messaging_product": "whatsapp", "type": mime},
            "files": {"file": (media.filename or "file", media.data, mime)},
        }
        return self._with_retries(_retry_upload, self._upload_once, options, sent_nothing=True)

    # --- plumbing -------------------------------------------------------------------------------

    def _envelope(self, to: str, kind: str, reply_to: str | None) -> dict[str, Any]:
        """The common fields. A phone number goes in ``to``; a business-scoped user id (a
        customer known by username only) in ``recipient``: Meta accepts a BSUID in ``to``
        with 200 and then silently drops the message."""
        address = "recipient" if is_bsuid(to) else "to"
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            address: to.strip(),
            "type": kind,
        }
        if reply_to:
            body["context"] = {"message_id": reply_to}
        return body

    def _send(self, body: dict[str, Any]) -> SendResult:
        return self._with_retries(_retry_send, self._send_once, {"json": body})

    def _with_retries(
        self,
        retry_if: Callable[[BaseException], bool],
        once: Callable[[dict[str, Any]], T],
        options: dict[str, Any],
        *,
        sent_nothing: bool = False,
    ) -> T:
        """``once(options)`` under the in-call retry policy; a transport failure left over
        becomes its send outcome (raised outside ``except``, so nothing httpx is chained)."""
        retrying = transient_retry(self._retry_attempts, self._retry_max_wait, retry_if=retry_if)
        outcome: Exception | None = None
        try:
            return retrying(once, options)
        except RemoteError as exc:
            outcome = outcome_of_transport_error(exc, sent_nothing=sent_nothing)
        except SendOutcomeUnknown as exc:
            if not sent_nothing:
                raise
            outcome = SendRetryLater(exc.reason)
        assert outcome is not None
        raise outcome

    def _post(self, path: str, options: dict[str, Any]) -> httpx.Response:
        """One POST. A message call (``path == "messages"``: a text, media or template send)
        takes a slot of the number's pacer first, or raises
        :class:`~app.integrations.whatsapp.pacing.PacingBusy`; a 130429 holds the pacer."""
        pacer = self._pacer if path == "messages" else None
        if pacer is not None:
            pacer.acquire()
        url = f"{self.api_base_url}/{self.phone_number_id}/{path}"
        headers = {"Authorization": f"Bearer {self.__token}", "Accept": "application/json"}
        resp = post_once(self._http, url, headers, self._timeout, **options)
        if pacer is not None and not resp.is_success and _is_throughput_limit(resp):
            pacer.hold(THROUGHPUT_HOLD_SECONDS)
        return resp

    def _send_once(self, options: dict[str, Any]) -> SendResult:
        resp = self._post("messages", options)
        if not resp.is_success:
            raise classify_graph_error(resp, (self.__token,))
        body = _json_or_none(resp)
        messages = body.get("messages") if isinstance(body, dict) else None
        first = messages[0] if isinstance(messages, list) and messages else None
        message_id = first.get("id") if isinstance(first, dict) else None
        if not isinstance(message_id, str) or not message_id:
            raise SendOutcomeUnknown(f"Meta answered {resp.status_code} without a message id")
        contacts = body.get("contacts") if isinstance(body, dict) else None
        contact = contacts[0] if isinstance(contacts, list) and contacts else None
        wa_id = contact.get("wa_id") if isinstance(contact, dict) else None
        return SendResult(message_id, wa_id if isinstance(wa_id, str) and wa_id else None)

    def _upload_once(self, options: dict[str, Any]) -> str:
        resp = self._post("media", options)
        if not resp.is_success:
            raise classify_graph_error(resp, (self.__token,))
        body = _json_or_none(resp)
        media_id = body.get("id") if isinstance(body, dict) else None
        if isinstance(media_id, int) and not isinstance(media_id, bool):
            media_id = str(media_id)
        if not isinstance(media_id, str) or not media_id:
            raise SendRetryLater(f"the upload answered {resp.status_code} without a media id")
        return media_id


def _json_or_none(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except (ValueError, UnicodeDecodeError):
        return None


def _is_throughput_limit(resp: httpx.Response) -> bool:
    """Meta's 130429: the number's messages per second are spent (inbound ones count too)."""
    error = _graph_error(resp)
    return error is not None and _as_int(error.get("code")) == THROUGHPUT_LIMIT
