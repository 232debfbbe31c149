"""An agent's WhatsApp template, as Chatwoot's inbox webhook carries it.

When an agent picks a template in Chatwoot (or an API client posts one), Chatwoot stores the
message with ``additional_attributes.template_params`` and sends it in ``message_created``
(``Message#webhook_data`` includes ``additional_attributes``). The shape, from Chatwoot's source
(``Messages::MessageBuilder#template_params``; the picker's
``dashboard/helper/templateHelper.js#buildTemplateParameters``; the swagger's
``conversation_message_create_payload.template_params``; the sender's
``Whatsapp::TemplateProcessorService`` and ``Whatsapp::PopulateTemplateParametersService``)::

    {"name": "order_ready_pickup", "category": "UTILITY", "language": "en_US",
     "processed_params": {
        "body": {"1": "Sheena", "2": "A-10427"},
        "header": {"media_url": "https://...", "media_type": "image", "media_name": "x.pdf"},
        "buttons": [{"type": "url", "parameter": "A-10427", "url": "...", "variables": ["1"]}]}}

``buttons`` is indexed by the button's position in the template (the picker fills
``buttons[index]``, so JSON gives ``null`` for the buttons without a variable). A header
without media may carry text variables (``{"1": "..."}``). The older flat form
(``processed_params: {"1": "..."}``, body variables only) is read too, as Chatwoot's
``TemplateParameterConverterService`` does. Blank values are left out, as Chatwoot does.

Reading never raises: anything unreadable is left out (the send then fails with Meta's reason).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["TemplateParams", "read_template_params"]

MAX_VALUE_CHARS = 32768  # Meta's limit for a text parameter
MAX_BUTTONS = 10
_SECTIONS = ("body", "header", "buttons", "footer")
_MEDIA_KEYS = ("media_url", "media_type", "media_name")


@dataclass(frozen=True)
class TemplateParams:
    """The template an agent sent: ``name``, ``language`` and the variables' values.

    ``body`` / ``header_text``: ``(variable, value)`` pairs, numbered variables in number order
    (then named ones in the order given); ``buttons``: ``(index, type, parameter)``.
    """

    name: str
    language: str
    body: tuple[tuple[str, str], ...] = ()
    header_text: tuple[tuple[str, str], ...] = ()
    header_media_url: str | None = None
    header_media_type: str | None = None
    header_media_name: str | None = None
    buttons: tuple[tuple[int, str, str], ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TemplateParams:
        """From the dict ``dataclasses.asdict`` made of one (JSON turned tuples into lists)."""
        return cls(
            name=data["name"],
            language=data["language"],
            body=tuple((str(k), str(v)) for k, v in data.get("body") or ()),
            header_text=tuple((str(k), str(v)) for k, v in data.get("header_text") or ()),
            header_media_url=data.get("header_media_url"),
            header_media_type=data.get("header_media_type"),
            header_media_name=data.get("header_media_name"),
            buttons=tuple((int(i), str(t), str(p)) for i, t, p in data.get("buttons") or ()),
        )


def _object(value: Any) -> dict[str, Any] | None:
    """A JSON object, also when Chatwoot stored it as a JSON string."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else None
        except (ValueError, RecursionError):
            return None
    return value if isinstance(value, dict) else None


def _value(value: Any) -> str | None:
    """A variable's value as text (numbers too), None when blank or not a scalar."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()[:MAX_VALUE_CHARS]


def _ordered(variables: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """Numbered variables by number, then the others in the order given; blanks left out."""
    pairs = [(str(k).strip(), _value(v)) for k, v in variables.items()]
    kept = [(k, v) for k, v in pairs if k and v is not None]
    numbered = sorted((p for p in kept if p[0].isdigit()), key=lambda p: int(p[0]))
    return tuple(numbered + [p for p in kept if not p[0].isdigit()])


def _buttons(value: Any) -> tuple[tuple[int, str, str], ...]:
    found = []
    for index, button in enumerate(value[:MAX_BUTTONS] if isinstance(value, list) else ()):
        if not isinstance(button, dict):
            continue
        kind, parameter = button.get("type"), _value(button.get("parameter"))
        if isinstance(kind, str) and kind.strip() and parameter is not None:
            found.append((index, kind.strip().lower(), parameter))
    return tuple(found)


def _text(value: Any, limit: int = 200) -> str:
    return value.strip()[:limit] if isinstance(value, str) else ""


def read_template_params(additional_attributes: Any) -> TemplateParams | None:
    """The template of a message, from its ``additional_attributes``; None when it has none."""
    attributes = _object(additional_attributes)
    params = _object(attributes.get("template_params")) if attributes else None
    if not params:
        return None
    processed = _object(params.get("processed_params")) or {}
    if processed and not any(key in processed for key in _SECTIONS):
        processed = {"body": processed}  # the older flat form: body variables only
    body = _object(processed.get("body")) or {}
    header = _object(processed.get("header")) or {}
    media_url = _value(header.get("media_url"))
    return TemplateParams(
        name=_text(params.get("name")),
        language=_text(params.get("language"), 20),
        body=_ordered(body),
        header_text=_ordered({k: v for k, v in header.items() if k not in _MEDIA_KEYS}),
        header_media_url=media_url,
        header_media_type=(_value(header.get("media_type")) or "").lower() or None,
        header_media_name=_value(header.get("media_name")),
        buttons=_buttons(processed.get("buttons")),
    )
