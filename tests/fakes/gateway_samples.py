"""Realistic RyzeAPI gateway webhook bodies (see ``RYZEAPI_NOTES.md`` for their provenance).

Each ``*_data`` function returns the ``data`` of one event; :func:`webhook_body` wraps it in
the envelope the gateway POSTs. Every call returns a fresh dict, so tests may mutate it.

    body = webhook_body("message.exchange", text_data(text="oi"), "suporte", "gw-token")
"""

from __future__ import annotations

import copy
from typing import Any

CUSTOMER = "5511999998888"  # Brazilian mobile, 13-digit canonical form
CUSTOMER_12 = "551199998888"  # the same number as WhatsApp often reports it (no 9th digit)
CUSTOMER_LID = "204127456789012@lid"
BUSINESS = "5511988887777"
GROUP = "120363041234567890@g.us"
NEWSLETTER = "120363422585881117@newsletter"
WHEN = "2026-04-28T10:30:00Z"
WHEN_EPOCH = 1777372200
GATEWAY_URL = "https://ryzeapi.cloud"
GATEWAY_TOKEN = "gw-token"


def webhook_body(
    event: str,
    data: Any,
    instance: str = "suporte",
    token: str = GATEWAY_TOKEN,
    base_url: str = GATEWAY_URL,
) -> dict[str, Any]:
    """The envelope RyzeAPI delivers to webhooks and WebSockets."""
    return {
        "event": event,
        "data": copy.deepcopy(data),
        "instanceData": {"baseUrl": base_url, "instance": instance, "token": token},
    }


def _jid(phone: str) -> str:
    return f"{phone}@s.whatsapp.net"


def message_data(
    message_id: str = "3EB0C431D2A8F7B61E5A",
    *,
    direction: str = "incoming",
    chat: dict[str, Any] | None = None,
    sender: dict[str, Any] | None = None,
    timestamp: Any = WHEN,
    **fields: Any,
) -> dict[str, Any]:
    """A ``message.exchange`` payload; ``fields`` are merged into ``message``."""
    customer = {"jid": _jid(CUSTOMER), "lid": CUSTOMER_LID, "name": "João Silva"}
    business = {"jid": _jid(BUSINESS), "name": "Orion Suporte"}
    if sender is None:
        sender = customer if direction == "incoming" else business
    message: dict[str, Any] = {
        "id": message_id,
        "direction": direction,
        "timestamp": timestamp,
        "chat": chat if chat is not None else {**customer, "type": "private"},
        "sender": sender,
        **fields,
    }
    return {"id": message_id, "message": message}


def text_data(text: str = "Olá, preciso de ajuda com meu pedido", **kw: Any) -> dict[str, Any]:
    return message_data(content={"text": text}, **kw)


def outgoing_text_data(text: str = "Claro! Qual o número do pedido?", **kw: Any) -> dict[str, Any]:
    """Typed by the business on its own phone: relayed to Chatwoot as outgoing."""
    return message_data(direction="outgoing", content={"text": text}, **kw)


def media_data(
    media_type: str = "image",
    *,
    mimetype: str = "image/jpeg",
    url: str | None = "https://mmg.whatsapp.net/v/t62.7118-24/1234.enc",
    s3_url: str | None = "https://bucket.s3.amazonaws.com/suporte/3EB0.jpg",
    base64: str | None = None,
    file_name: str | None = None,
    caption: str | None = None,
    **kw: Any,
) -> dict[str, Any]:
    media: dict[str, Any] = {"type": media_type, "mimetype": mimetype}
    for key, value in (
        ("url", url),
        ("s3Url", s3_url),
        ("base64", base64),
        ("fileName", file_name),
        ("caption", caption),
    ):
        if value is not None:
            media[key] = value
    return message_data(media=media, content={"text": caption} if caption else {}, **kw)


def image_data(caption: str = "Foto do produto", **kw: Any) -> dict[str, Any]:
    return media_data("image", caption=caption, **kw)


def ptt_data(**kw: Any) -> dict[str, Any]:
    """A voice note (push-to-talk)."""
    kw.setdefault("s3_url", "https://bucket.s3.amazonaws.com/suporte/3EB0.ogg")
    return media_data("ptt", mimetype="audio/ogg; codecs=opus", **kw)


def ptv_data(**kw: Any) -> dict[str, Any]:
    """A round video note."""
    return media_data("ptv", mimetype="video/mp4", **kw)


def document_data(**kw: Any) -> dict[str, Any]:
    kw.setdefault("file_name", "Contrato-2026.pdf")
    kw.setdefault("caption", "Segue o contrato")
    return media_data("document", mimetype="application/pdf", **kw)


def sticker_data(**kw: Any) -> dict[str, Any]:
    return media_data("sticker", mimetype="image/webp", **kw)


def location_data(**kw: Any) -> dict[str, Any]:
    return message_data(
        type="location",
        location={
            "latitude": -23.561414,
            "longitude": -46.655881,
            "name": "MASP",
            "address": "Av. Paulista, 1578 - Bela Vista, São Paulo",
        },
        **kw,
    )


VCARD = (
    "BEGIN:VCARD\nVERSION:3.0\nFN:Maria Souza\nORG:Acme Ltda;\n"
    "item1.TEL;waid=5521987654321:+55 21 98765-4321\nitem1.X-ABLabel:Celular\n"
    "EMAIL;type=INTERNET:maria@acme.com.br\nEND:VCARD"
)


def contact_data(**kw: Any) -> dict[str, Any]:
    return message_data(
        type="contact", contact={"displayName": "Maria Souza", "vcard": VCARD}, **kw
    )


def contacts_data(**kw: Any) -> dict[str, Any]:
    second = "BEGIN:VCARD\nVERSION:3.0\nFN:Pedro Lima\nTEL;type=CELL:+55 11 91234-5678\nEND:VCARD"
    return message_data(
        type="contacts",
        contacts=[
            {"displayName": "Maria Souza", "vcard": VCARD},
            {"displayName": "Pedro Lima", "vcard": second},
        ],
        **kw,
    )


def reaction_data(emoji: str = "👍", target: str = "wamid.agent.1", **kw: Any) -> dict[str, Any]:
    """A reaction, shaped like RyzeAPI's reaction echo: emoji in content, target in replyTo."""
    return message_data(
        type="reaction", content={"text": emoji}, replyTo={"messageId": target}, **kw
    )


def reply_data(text: str = "Esse aqui", quoted: str = "wamid.agent.1", **kw: Any) -> dict[str, Any]:
    return message_data(content={"text": text}, replyTo={"messageId": quoted}, **kw)


def edit_data(
    text: str = "texto corrigido", edited: str | None = None, **kw: Any
) -> dict[str, Any]:
    """An edit. RyzeAPI's edit answers with the edited message's own id, so the event is assumed
    to carry it as its id; ``edited`` adds an explicit target (whatsmeow's protocol key) instead.
    """
    if edited is not None:
        kw["protocolMessage"] = {"type": "MESSAGE_EDIT", "key": {"id": edited}}
    return message_data(type="message_edit", isEdit=True, content={"text": text}, **kw)


def revoke_data(deleted: str | None = None, **kw: Any) -> dict[str, Any]:
    """Deleted for everyone; ``deleted`` names the deleted message (``replyTo``) when the event's
    own id is not it."""
    if deleted is not None:
        kw["replyTo"] = {"messageId": deleted}
    return message_data(type="message_revoke", **kw)


def reaction_removed_data(target: str | None = "wamid.agent.1", **kw: Any) -> dict[str, Any]:
    """A reaction taken back: RyzeAPI's echo has ``content: ""`` and the target in ``replyTo``."""
    if target is None:
        return message_data(type="reaction", content={"text": ""}, **kw)
    return reaction_data(emoji="", target=target, **kw)


def poll_data(**kw: Any) -> dict[str, Any]:
    return message_data(
        type="poll", poll={"name": "Qual horário?", "options": ["Manhã", "Tarde"]}, **kw
    )


def unknown_data(**kw: Any) -> dict[str, Any]:
    """A kind the parser does not know (e.g. a PIX payment card)."""
    return message_data(type="pix", pix={"key": "suporte@acme.com.br"}, **kw)


def group_text_data(text: str = "Bom dia, grupo!", **kw: Any) -> dict[str, Any]:
    kw.setdefault("chat", {"jid": GROUP, "name": "Clientes VIP", "type": "group"})
    kw.setdefault(
        "sender", {"jid": _jid("5521987654321"), "lid": "99887766554433@lid", "name": "Ana"}
    )
    return message_data(content={"text": text}, **kw)


def newsletter_data(**kw: Any) -> dict[str, Any]:
    kw.setdefault("chat", {"jid": NEWSLETTER, "name": "Canal Acme", "type": "newsletter"})
    return message_data(content={"text": "Novidades da semana"}, **kw)


def lid_chat_data(text: str = "oi", **kw: Any) -> dict[str, Any]:
    """A private chat known by its LID only; the phone is on the sender."""
    kw.setdefault("chat", {"jid": CUSTOMER_LID, "name": "João Silva", "type": "private"})
    kw.setdefault("sender", {"jid": _jid(CUSTOMER_12), "lid": CUSTOMER_LID, "name": "João Silva"})
    return message_data(content={"text": text}, **kw)


def lid_with_phone_alt_data(text: str = "oi", **kw: Any) -> dict[str, Any]:
    """A chat and sender known by LID, the phone given only as Baileys-style ``senderPn``."""
    kw.setdefault("chat", {"jid": CUSTOMER_LID, "type": "private"})
    kw.setdefault("sender", {"jid": CUSTOMER_LID, "name": "João Silva"})
    kw.setdefault("senderPn", _jid(CUSTOMER_12))
    return message_data(content={"text": text}, **kw)


def status_data(
    message_ids: list[str] | str = "wamid.agent.1",
    receipt: str = "delivered",
    chat_jid: str = _jid(CUSTOMER),
    **fields: Any,
) -> dict[str, Any]:
    """A ``message.status`` receipt (whatsmeow style) for one or more sent messages."""
    ids = [message_ids] if isinstance(message_ids, str) else list(message_ids)
    return {
        "messageIds": ids,
        "type": receipt,
        "chat": {"jid": chat_jid, "type": "group" if chat_jid.endswith("@g.us") else "private"},
        "sender": {"jid": chat_jid if not chat_jid.endswith("@g.us") else _jid(CUSTOMER)},
        "timestamp": WHEN,
        **fields,
    }


def chat_status_record(
    message_id: str = "wamid.agent.1",
    status: str = "READ",
    status_code: int | None = 4,
    chat_jid: str = _jid(CUSTOMER),
    **fields: Any,
) -> dict[str, Any]:
    """A status spelled as RyzeAPI's chat-status records (``GET /api/chat/status``): snake_case
    ``message_id``, textual ``status`` (any case), numeric ``status_code``, ``chat_jid``."""
    record: dict[str, Any] = {
        "message_id": message_id,
        "status": status,
        "direction": "sent",
        "chat_jid": chat_jid,
        "timestamp": WHEN,
        **fields,
    }
    if status_code is not None:
        record["status_code"] = status_code
    return record


def call_update_data() -> dict[str, Any]:
    return {
        "callId": "CALL123",
        "status": "offer",
        "from": {"jid": _jid(CUSTOMER), "name": "João Silva"},
        "timestamp": WHEN,
    }


def instance_state_data(state: str = "connected") -> dict[str, Any]:
    return {"state": state, "timestamp": WHEN}
