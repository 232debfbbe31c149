"""The ``template`` object of a Cloud API template message, and what Wootbridge remembers of a
business account's templates to send them right.

Meta's shape (v23.0 ``TemplateObject``, ``LanguageObject``, ``TemplateComponent``; the example
``requests/send_template.json``)::

    {"name": "order_ready_pickup",
     "language": {"policy": "deterministic", "code": "en_US"},
     "components": [
       {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://..."}}]},
       {"type": "body", "parameters": [{"type": "text", "text": "Sheena"}, ...]},
       {"type": "button", "sub_type": "url", "index": "0",
        "parameters": [{"type": "text", "text": "A-10427"}]}]}

Header media goes by ``link`` (a document with its ``filename``); body and header text
parameters are ``text`` (with ``parameter_name`` for a template whose ``parameter_format`` is
``NAMED``); a URL button's parameter is the ``text`` appended to its URL, a quick-reply
button's a ``payload``, a copy-code button's a ``coupon_code``. Components without parameters
are left out (Meta fills in the template's fixed texts itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from app.integrations.whatsapp.send import SendResult

__all__ = [
    "BUTTON_SUB_TYPES",
    "HeaderMedia",
    "OutgoingTemplate",
    "TemplateButton",
    "TemplateSender",
    "TemplateSpec",
    "template_object",
]

HEADER_MEDIA_KINDS = frozenset({"image", "video", "document"})
# a template definition's button type -> the sub_type of its send component
BUTTON_SUB_TYPES = {"URL": "url", "QUICK_REPLY": "quick_reply", "COPY_CODE": "copy_code"}


@dataclass(frozen=True)
class HeaderMedia:
    """The header's image, video or document, fetched by Meta from ``link``."""

    kind: str
    link: str
    filename: str | None = None


@dataclass(frozen=True)
class TemplateButton:
    """The parameter of the button at ``index`` (its position in the template's buttons)."""

    index: int
    sub_type: str  # url, quick_reply or copy_code
    parameter: str


@dataclass(frozen=True)
class OutgoingTemplate:
    """A template to send: which one, and the values of its variables.

    ``body`` and ``header_text`` are ``(variable, value)`` pairs in the order to send them
    (positional templates: by the number of the variable); ``named`` when the template's
    ``parameter_format`` is ``NAMED`` (each value then carries its ``parameter_name``)."""

    name: str
    language: str
    body: tuple[tuple[str, str], ...] = ()
    header_text: tuple[tuple[str, str], ...] = ()
    header_media: HeaderMedia | None = None
    buttons: tuple[TemplateButton, ...] = ()
    named: bool = False


@dataclass(frozen=True)
class TemplateSpec:
    """What Wootbridge keeps of one synced template: enough to recognise it and to send its
    parameters the way it expects (``button_types``: the definition's button types in order)."""

    name: str
    language: str
    parameter_format: str | None = None
    header_format: str | None = None
    button_types: tuple[str, ...] = ()

    @property
    def named(self) -> bool:
        return (self.parameter_format or "").upper() == "NAMED"

    def matches(self, name: str, language: str) -> bool:
        """Chatwoot's rule (``Whatsapp::TemplateProcessorService#find_template``): the same
        name, the same language whatever its case."""
        return self.name == name and self.language.lower() == language.lower()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "language": self.language,
            "parameter_format": self.parameter_format,
            "header_format": self.header_format,
            "button_types": list(self.button_types),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TemplateSpec:
        return cls(
            name=str(data["name"]),
            language=str(data["language"]),
            parameter_format=data.get("parameter_format"),
            header_format=data.get("header_format"),
            button_types=tuple(str(b) for b in data.get("button_types") or ()),
        )

    @classmethod
    def of(cls, template: dict[str, Any]) -> TemplateSpec:
        """The spec of a template in Meta's shape (as :func:`templates.usable_templates`
        keeps them)."""
        header_format, buttons = None, []
        for component in template.get("components") or ():
            kind = str(component.get("type") or "").upper()
            if kind == "HEADER":
                header_format = str(component.get("format") or "TEXT").upper()
            elif kind == "BUTTONS":
                buttons += [
                    str(b.get("type") or "").upper() for b in component.get("buttons") or ()
                ]
        parameter_format = template.get("parameter_format")
        return cls(
            name=str(template["name"]),
            language=str(template["language"]),
            parameter_format=str(parameter_format).upper() if parameter_format else None,
            header_format=header_format,
            button_types=tuple(buttons),
        )


@runtime_checkable
class TemplateSender(Protocol):
    """A WhatsApp sender that can send templates (the Cloud API; WhatsApp Web has none)."""

    def send_template(
        self, to: str, template: OutgoingTemplate, reply_to: str | None = None
    ) -> SendResult:
        """Send ``template`` to ``to``; raises the sender's ``Send*`` exceptions."""
        ...


def _text(variable: str, value: str, named: bool) -> dict[str, Any]:
    parameter: dict[str, Any] = {"type": "text", "text": value}
    if named:
        parameter["parameter_name"] = variable
    return parameter


def _media(media: HeaderMedia) -> dict[str, Any]:
    source: dict[str, Any] = {"link": media.link}
    if media.kind == "document" and media.filename:
        source["filename"] = media.filename
    return {"type": media.kind, media.kind: source}


def _button(button: TemplateButton) -> dict[str, Any]:
    if button.sub_type == "quick_reply":
        parameter = {"type": "payload", "payload": button.parameter}
    elif button.sub_type == "copy_code":
        parameter = {"type": "coupon_code", "coupon_code": button.parameter}
    else:
        parameter = {"type": "text", "text": button.parameter}
    return {
        "type": "button",
        "sub_type": button.sub_type,
        "index": str(button.index),
        "parameters": [parameter],
    }


def template_object(template: OutgoingTemplate) -> dict[str, Any]:
    """The message's ``template`` field, in Meta's shape (see the module doc)."""
    components: list[dict[str, Any]] = []
    header = [_text(k, v, template.named) for k, v in template.header_text]
    if template.header_media is not None:
        header = [_media(template.header_media)]
    if header:
        components.append({"type": "header", "parameters": header})
    if template.body:
        body = [_text(k, v, template.named) for k, v in template.body]
        components.append({"type": "body", "parameters": body})
    components += [_button(b) for b in sorted(template.buttons, key=lambda b: b.index)]
    sent: dict[str, Any] = {
        "name": template.name,
        "language": {"policy": "deterministic", "code": template.language},
    }
    if components:
        sent["components"] = components
    return sent
