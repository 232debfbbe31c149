"""Sending an agent's WhatsApp template (see :mod:`app.relay.outbound.template_params`).

The template must be one the sender can send (the Cloud API: WhatsApp Web gateways have no
templates) and, once the business account's templates were synced, one of them: the same name,
the same language whatever its case (Chatwoot's own rule). An unknown template fails at once
with the reason, without a call to Meta; a template Meta does not know after all (132001) fails
with Meta's reason. The synced definition decides what each value is: a NAMED template's
values carry their ``parameter_name``; a button's ``sub_type`` is its type in the definition
(URL, QUICK_REPLY, COPY_CODE), whatever the picker said; a media header takes the definition's
format.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from app.integrations.whatsapp.cloud_template import (
    BUTTON_SUB_TYPES,
    HeaderMedia,
    OutgoingTemplate,
    TemplateButton,
    TemplateSender,
    TemplateSpec,
)
from app.integrations.whatsapp.send import SendFailure, SendResult, WhatsAppSender
from app.relay.outbound.template_params import TemplateParams
from app.store.models import ChatwootIntegration

logger = logging.getLogger(__name__)

NO_TEMPLATES_ON_GATEWAY = (
    "WhatsApp templates can only be sent through the WhatsApp Cloud API; this instance is a "
    "WhatsApp Web gateway (send a normal message instead)"
)
MEDIA_KINDS = frozenset({"image", "video", "document"})
PICKER_SUB_TYPES = frozenset(BUTTON_SUB_TYPES.values())


def synced_specs(integration_id: str) -> tuple[bool, list[TemplateSpec]] | None:
    """The templates last synced for the integration (read fresh: a sync may have run since the
    drain began): ``(complete, specs)``, or None when none was ever synced."""
    row = (
        ChatwootIntegration.select(ChatwootIntegration.templates_index)
        .where(ChatwootIntegration.id == integration_id)
        .first()
    )
    if row is None or not row.templates_index:
        return None
    try:
        index: dict[str, Any] = json.loads(row.templates_index)
        specs = [TemplateSpec.from_dict(item) for item in index["templates"]]
    except (ValueError, KeyError, TypeError):
        logger.warning("template index of %s is unreadable; not checked", integration_id)
        return None
    return bool(index.get("complete", True)), specs


def unknown_reason(params: TemplateParams) -> str:
    return (
        f"template {params.name} ({params.language}) is not among the approved templates of "
        "this WhatsApp Business Account"
    )


def find_spec(integration_id: str, params: TemplateParams) -> TemplateSpec | None:
    """The synced definition of the template; :class:`SendFailure` when the templates were
    synced (completely) and it is not among them."""
    synced = synced_specs(integration_id)
    if synced is None:
        return None
    complete, specs = synced
    spec = next((s for s in specs if s.matches(params.name, params.language)), None)
    if spec is None and complete:
        raise SendFailure(unknown_reason(params))
    return spec


def _buttons(params: TemplateParams, spec: TemplateSpec | None) -> tuple[TemplateButton, ...]:
    buttons = []
    for index, kind, parameter in params.buttons:
        sub_type = kind if kind in PICKER_SUB_TYPES else None
        if spec is not None and index < len(spec.button_types):
            sub_type = BUTTON_SUB_TYPES.get(spec.button_types[index])
        if sub_type is not None:  # a phone-number button takes no parameter
            buttons.append(TemplateButton(index, sub_type, parameter))
    return tuple(buttons)


def _header_media(params: TemplateParams, spec: TemplateSpec | None) -> HeaderMedia | None:
    kind = params.header_media_type
    if spec is not None and (spec.header_format or "").lower() in MEDIA_KINDS:
        kind = (spec.header_format or "").lower()
    if params.header_media_url is None or kind not in MEDIA_KINDS:
        return None
    return HeaderMedia(kind, params.header_media_url, params.header_media_name)


def outgoing_template(params: TemplateParams, spec: TemplateSpec | None) -> OutgoingTemplate:
    media = _header_media(params, spec)
    return OutgoingTemplate(
        name=params.name,
        language=spec.language if spec is not None else params.language,
        body=params.body,
        header_text=() if media is not None else params.header_text,
        header_media=media,
        buttons=_buttons(params, spec),
        named=spec.named if spec is not None else False,
    )


def send_template(
    integration: ChatwootIntegration,
    sender: WhatsAppSender,
    to: str,
    params: TemplateParams,
    reply_to: str | None = None,
) -> SendResult:
    """Send the agent's template to ``to``; raises the sender's ``Send*`` exceptions, and
    :class:`SendFailure` (no call made) for a template that cannot be sent."""
    if not isinstance(sender, TemplateSender):
        raise SendFailure(NO_TEMPLATES_ON_GATEWAY)
    if not params.name or not params.language:
        raise SendFailure("the template message names no template or no language")
    spec = find_spec(str(integration.id), params)
    return sender.send_template(to, outgoing_template(params, spec), reply_to=reply_to)
