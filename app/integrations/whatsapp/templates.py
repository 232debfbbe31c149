"""A WhatsApp Business Account's message templates: reading them from Graph and choosing the ones
an agent can send from Chatwoot's template picker.

Reading (:class:`TemplateClient`)
    ``GET {graph}/{waba-id}/message_templates`` with the access token as a bearer (never in the
    query), then every ``paging.next`` URL Graph hands back, up to :data:`MAX_PAGES` pages. A
    ``next`` URL must stay on the Graph API's own origin (scheme, host and port of the
    configured base URL): it receives our token. Every request is a GET, so transient failures
    (connect errors, timeouts, 429, 5xx, Meta's retry-later codes) are retried with the shared
    policy. What is left raises :class:`TemplateFetchError`, which says whether it is worth
    trying again later (``transient``) and whether Meta refused the token (``auth``: often a
    token that may send messages but lacks the ``whatsapp_business_management`` permission).

Choosing (:func:`usable_templates`)
    Chatwoot's own picker (``app/javascript/dashboard/store/modules/inboxes.js``,
    ``getFilteredWhatsAppTemplates``) hides templates that are not approved, authentication
    templates, and those with LIST, PRODUCT, CATALOG or CALL_PERMISSION_REQUEST components or a
    LOCATION header. Wootbridge keeps only what it can send from Chatwoot's ``processed_params``
    (header media or text, body text, URL / quick-reply / copy-code button parameters), so it
    goes one step further and uses allow-lists: components HEADER, BODY, FOOTER and BUTTONS;
    headers TEXT, IMAGE, VIDEO and DOCUMENT; buttons QUICK_REPLY, URL, PHONE_NUMBER and
    COPY_CODE. That leaves out carousels, limited-time offers, flows, catalog and
    multi-product buttons (Meta's send reference needs an ``action`` parameter or cards for
    them, which Chatwoot's picker cannot fill) and OTP buttons (authentication only).

    Each template keeps Meta's shape (``name``, ``language``, ``category``, ``status``,
    ``components``, and ``id`` / ``parameter_format`` when Meta gives them), minus what Chatwoot
    could not store anyway: Rails' strong parameters (``additional_attributes: {}`` in
    ``Channel::Api::EDITABLE_ATTRS``) drop an array nested directly in an array, such as
    ``example.body_text: [["Mark", "FALL25"]]``; removing it here keeps what we write equal to
    what Chatwoot shows back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from app.integrations.errors import (
    RemoteAddressNotAllowed,
    RemoteBadResponse,
    RemoteError,
    error_from_transport,
    is_transient,
)
from app.integrations.http import read_timeout, transient_retry
from app.integrations.whatsapp.cloud_send import classify_graph_error
from app.integrations.whatsapp.send import (
    SendAuthFailure,
    SendFailure,
    SendOutcomeUnknown,
    SendRetryLater,
    clean_text,
)

__all__ = [
    "MAX_PAGES",
    "TemplateClient",
    "TemplateFetchError",
    "TemplateList",
    "usable_templates",
]

MAX_PAGES = 50
PAGE_SIZE = 100
USABLE_COMPONENTS = frozenset({"HEADER", "BODY", "FOOTER", "BUTTONS"})
USABLE_HEADER_FORMATS = frozenset({"TEXT", "IMAGE", "VIDEO", "DOCUMENT"})
USABLE_BUTTONS = frozenset({"QUICK_REPLY", "URL", "PHONE_NUMBER", "COPY_CODE"})
KEPT_KEYS = ("id", "name", "language", "category", "status", "parameter_format", "components")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class TemplateFetchError(Exception):
    """The templates could not be read. ``transient``: worth trying again later; ``auth``:
    Meta refused the access token (or its permissions) for this business account."""

    def __init__(self, reason: str, *, transient: bool = False, auth: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.auth = auth

    def __repr__(self) -> str:
        return (
            f"TemplateFetchError(reason={self.reason!r}, transient={self.transient!r}, "
            f"auth={self.auth!r})"
        )


@dataclass(frozen=True)
class TemplateList:
    """Every template Graph listed (as Meta shapes them). ``complete`` is False when the walk
    stopped at :data:`MAX_PAGES` before the last page."""

    templates: tuple[dict[str, Any], ...]
    complete: bool = True  # False: the walk stopped at the page cap


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or "@" in parts.netloc:
        return None
    return scheme, host, port


def _retry_read(exc: BaseException) -> bool:
    """A GET may always be repeated: retry anything that may pass."""
    if isinstance(exc, SendRetryLater | SendOutcomeUnknown):
        return True
    return is_transient(exc)


class TemplateClient:
    """Reads the message templates of business accounts with one access token."""

    def __init__(
        self,
        api_base_url: str,
        access_token: str,
        *,
        http: httpx.Client,
        retry_attempts: int = 3,
        retry_max_wait: float = 2.0,
        timeout: float | None = None,
        max_pages: int = MAX_PAGES,
    ) -> None:
        """``api_base_url`` is Graph with its version (``https://graph.facebook.com/v23.0``);
        ``max_pages`` caps the pages read in one :meth:`fetch`."""
        self.api_base_url = api_base_url.rstrip("/")
        self.__token = access_token
        self._http = http
        self._retry_attempts = retry_attempts
        self._retry_max_wait = retry_max_wait
        self._timeout = read_timeout(http, timeout)
        self._max_pages = max_pages

    def __repr__(self) -> str:
        return f"TemplateClient(api_base_url={self.api_base_url!r})"

    def fetch(self, business_account_id: str) -> TemplateList:
        """Every template of the business account, page after page (see the module doc)."""
        if not business_account_id.isdigit():
            raise TemplateFetchError("the business account id must be digits")
        url = f"{self.api_base_url}/{business_account_id}/message_templates"
        params: dict[str, str] | None = {"limit": str(PAGE_SIZE)}
        found: list[dict[str, Any]] = []
        for _page in range(self._max_pages):
            body = self._read(url, params)
            found += [item for item in _data_of(body) if isinstance(item, dict)]
            following = _next_of(body)
            if following is None:
                return TemplateList(tuple(found))
            if _origin(following) != _origin(self.api_base_url):
                raise TemplateFetchError("paging.next leaves the Graph API's origin; not followed")
            url, params = following, None
        return TemplateList(tuple(found), complete=False)

    # --- plumbing -------------------------------------------------------------------------------

    def _read(self, url: str, params: dict[str, str] | None) -> dict[str, Any]:
        """One page under the retry policy; the failure left over as a TemplateFetchError
        (raised outside ``except``, so nothing httpx is chained)."""
        retrying = transient_retry(self._retry_attempts, self._retry_max_wait, retry_if=_retry_read)
        outcome: TemplateFetchError | None = None
        try:
            return retrying(self._read_once, url, params)
        except SendAuthFailure as exc:
            outcome = TemplateFetchError(
                f"Meta refused the token access to the templates: {exc.reason}", auth=True
            )
        except (SendRetryLater, SendOutcomeUnknown) as exc:
            outcome = TemplateFetchError(f"Meta is unavailable: {exc.reason}", transient=True)
        except SendFailure as exc:
            outcome = TemplateFetchError(f"Meta refused the request: {exc}")
        except RemoteAddressNotAllowed as exc:
            outcome = TemplateFetchError(f"the Graph API address is not allowed: {exc.detail}")
        except RemoteError as exc:
            outcome = TemplateFetchError(str(exc), transient=is_transient(exc))
        assert outcome is not None
        raise outcome

    def _read_once(self, url: str, params: dict[str, str] | None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.__token}", "Accept": "application/json"}
        options: dict[str, Any] = {"headers": headers, "params": params}
        if self._timeout is not None:
            options["timeout"] = self._timeout
        failure: RemoteError | None = None
        try:
            resp = self._http.get(url, **options)
        except httpx.HTTPError as exc:
            failure = error_from_transport(exc)
        if failure is not None:
            raise failure
        if not resp.is_success:
            raise classify_graph_error(resp, (self.__token,))
        try:
            body = resp.json()
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            raise RemoteBadResponse(f"the template list answered {resp.status_code} without JSON")
        return body


def _data_of(body: dict[str, Any]) -> list[Any]:
    data = body.get("data")
    if not isinstance(data, list):
        raise TemplateFetchError("Meta answered a template page without a data list")
    return data


def _next_of(body: dict[str, Any]) -> str | None:
    paging = body.get("paging")
    following = paging.get("next") if isinstance(paging, dict) else None
    return following.strip() if isinstance(following, str) and following.strip() else None


# --- choosing -----------------------------------------------------------------------------------


def _upper(value: Any) -> str:
    return value.strip().upper() if isinstance(value, str) else ""


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def why_unusable(template: dict[str, Any]) -> str | None:
    """Why a template is not offered (for the log), or None when it is usable."""
    name, language = template.get("name"), template.get("language")
    if not isinstance(name, str) or not name.strip():
        return "no name"
    if not isinstance(language, str) or not language.strip():
        return "no language"
    if _upper(template.get("status")) != "APPROVED":
        return f"status {_upper(template.get('status')) or 'unknown'}"
    if _upper(template.get("category")) == "AUTHENTICATION":
        return "an authentication template"
    components = template.get("components")
    if not isinstance(components, list) or len(_dicts(components)) != len(components):
        return "unreadable components"
    for component in _dicts(components):
        kind = _upper(component.get("type"))
        if kind not in USABLE_COMPONENTS:
            return f"a {kind or 'typeless'} component"
        if kind == "HEADER" and _upper(component.get("format") or "TEXT") not in (
            USABLE_HEADER_FORMATS
        ):
            return f"a {_upper(component.get('format'))} header"
        for button in _dicts(component.get("buttons")) if kind == "BUTTONS" else ():
            if _upper(button.get("type")) not in USABLE_BUTTONS:
                return f"a {_upper(button.get('type')) or 'typeless'} button"
    return None


def _storable(value: Any) -> Any:
    """``value`` without arrays nested directly in arrays (what Rails' ``permit`` drops)."""
    if isinstance(value, dict):
        return {key: _storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_storable(item) for item in value if not isinstance(item, list)]
    return value


def usable_templates(templates: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The templates an agent can send (see the module doc), in Meta's shape, sorted by name
    and language, each (name, language) once."""
    chosen: dict[tuple[str, str], dict[str, Any]] = {}
    for template in templates:
        if why_unusable(template) is not None:
            continue
        kept = {key: _storable(template[key]) for key in KEPT_KEYS if key in template}
        kept["name"], kept["language"] = template["name"].strip(), template["language"].strip()
        chosen.setdefault((kept["name"], kept["language"]), kept)
    return [chosen[key] for key in sorted(chosen)]


def describe_unusable(templates: Iterable[dict[str, Any]], limit: int = 10) -> list[str]:
    """``name (language): reason`` for the first templates left out (names are not secret)."""
    notes: list[str] = []
    for template in templates:
        reason = why_unusable(template)
        if reason is not None and len(notes) < limit:
            name = clean_text(str(template.get("name") or "?"))[:80]
            notes.append(
                f"{name} ({clean_text(str(template.get('language') or '?'))[:20]}): {reason}"
            )
    return notes
