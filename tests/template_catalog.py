"""A WhatsApp Business Account's message templates as Graph lists them (``GET
/{waba-id}/message_templates``, Meta's shape: v23.0 spec example and template reference), for
the template tests. Ten templates: four an agent can send, six Wootbridge must leave out."""

from __future__ import annotations

import copy
from typing import Any

WABA_ID = "102290129340398"  # entry[].id of tests/data/whatsapp_cloud/2026/template_status_*

ORDER_READY: dict[str, Any] = {
    "id": "1843265907712345",
    "name": "order_ready_pickup",
    "language": "en_US",
    "status": "APPROVED",
    "category": "UTILITY",
    "parameter_format": "POSITIONAL",
    "components": [
        {
            "type": "HEADER",
            "format": "IMAGE",
            "example": {"header_handle": ["https://scontent.whatsapp.net/v/t61/pickup.jpg"]},
        },
        {
            "type": "BODY",
            "text": "Hi {{1}}, your order {{2}} is ready for pickup.",
            "example": {"body_text": [["Sheena", "A-10427"]]},
        },
        {"type": "FOOTER", "text": "Reply STOP to opt out"},
        {
            "type": "BUTTONS",
            "buttons": [
                {
                    "type": "URL",
                    "text": "Track order",
                    "url": "https://shop.example.com/orders/{{1}}",
                    "example": ["https://shop.example.com/orders/A-10427"],
                }
            ],
        },
    ],
}
ORDER_READY_PT: dict[str, Any] = {
    "id": "1843265907712346",
    "name": "order_ready_pickup",
    "language": "pt_BR",
    "status": "APPROVED",
    "category": "UTILITY",
    "components": [{"type": "BODY", "text": "Seu pedido está pronto para retirada."}],
}
HELLO: dict[str, Any] = {
    "id": "1192339204654487",
    "name": "hello_world",
    "language": "en_US",
    "status": "APPROVED",
    "category": "MARKETING",
    "components": [
        {"type": "HEADER", "format": "TEXT", "text": "Hello World"},
        {"type": "BODY", "text": "Welcome and congratulations!!"},
        {"type": "FOOTER", "text": "WhatsApp Business API Team"},
    ],
}
COUPON: dict[str, Any] = {
    "id": "1843265907712399",
    "name": "coupon_offer",
    "language": "en_US",
    "status": "APPROVED",
    "category": "MARKETING",
    "parameter_format": "NAMED",
    "components": [
        {
            "type": "BODY",
            "text": "Hi {{customer_name}}, here is {{discount}} off.",
            "example": {
                "body_text_named_params": [
                    {"param_name": "customer_name", "example": "Sheena"},
                    {"param_name": "discount", "example": "20%"},
                ]
            },
        },
        {
            "type": "BUTTONS",
            "buttons": [
                {"type": "QUICK_REPLY", "text": "Not interested"},
                {"type": "COPY_CODE", "example": ["SAVE20"]},
            ],
        },
    ],
}
# sorted by name, then language, as the sync writes them
USABLE: list[dict[str, Any]] = [COUPON, HELLO, ORDER_READY, ORDER_READY_PT]

LEFT_OUT: list[dict[str, Any]] = [
    {  # authentication templates are not offered (Chatwoot's picker hides them too)
        "id": "2001",
        "name": "login_code",
        "language": "en_US",
        "status": "APPROVED",
        "category": "AUTHENTICATION",
        "components": [
            {"type": "BODY", "text": "*{{1}}* is your verification code."},
            {"type": "BUTTONS", "buttons": [{"type": "OTP", "otp_type": "COPY_CODE"}]},
        ],
    },
    {
        "id": "2002",
        "name": "spring_sale",
        "language": "en_US",
        "status": "REJECTED",
        "category": "MARKETING",
        "components": [{"type": "BODY", "text": "Spring sale!"}],
    },
    {
        "id": "2003",
        "name": "autumn_sale",
        "language": "en_US",
        "status": "PENDING",
        "category": "MARKETING",
        "components": [{"type": "BODY", "text": "Autumn sale!"}],
    },
    {  # a catalog button needs an action parameter the picker cannot fill
        "id": "2004",
        "name": "catalog_promo",
        "language": "en_US",
        "status": "APPROVED",
        "category": "MARKETING",
        "components": [
            {"type": "BODY", "text": "See our catalog"},
            {"type": "BUTTONS", "buttons": [{"type": "CATALOG", "text": "View catalog"}]},
        ],
    },
    {
        "id": "2005",
        "name": "store_location",
        "language": "en_US",
        "status": "APPROVED",
        "category": "UTILITY",
        "components": [
            {"type": "HEADER", "format": "LOCATION"},
            {"type": "BODY", "text": "Our store"},
        ],
    },
    {
        "id": "2006",
        "name": "product_list",
        "language": "en_US",
        "status": "APPROVED",
        "category": "MARKETING",
        "components": [{"type": "BODY", "text": "Pick one"}, {"type": "LIST"}],
    },
]


def all_templates() -> list[dict[str, Any]]:
    """Every template, in an order Graph could list them (usable and not, interleaved)."""
    mixed = [
        LEFT_OUT[0],
        ORDER_READY,
        LEFT_OUT[1],
        HELLO,
        LEFT_OUT[2],
        LEFT_OUT[3],
        COUPON,
        LEFT_OUT[4],
        ORDER_READY_PT,
        LEFT_OUT[5],
    ]
    return copy.deepcopy(mixed)


def as_chatwoot_stores(template: dict[str, Any]) -> dict[str, Any]:
    """The template as Chatwoot keeps it: Rails' ``permit`` drops arrays nested in arrays
    (``example.body_text: [[...]]`` becomes ``[]``)."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value if not isinstance(v, list)]
        return value

    stored: dict[str, Any] = strip(copy.deepcopy(template))
    return stored
