"""What an agent reads in Chatwoot when WhatsApp refuses a reply (``external_error``).

A refusal shows as ``"<code>: <title>"``, Meta's own words, except where the agent can do
something specific about it: 131047 (re-engagement: more than 24 hours since the customer last
wrote) says what to do instead, since only a template may be sent then. The same text is used
whether Meta refused the send at once or reported it later in a ``failed`` status webhook.
"""

from __future__ import annotations

__all__ = ["WINDOW_CLOSED_CODE", "WINDOW_CLOSED_HINT", "failure_text"]

WINDOW_CLOSED_CODE = 131047
WINDOW_CLOSED_HINT = "24-hour window closed — reply with a template"


def _as_code(code: int | str | None) -> int | None:
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    if isinstance(code, str) and code.strip().isdigit():
        return int(code.strip())
    return None


def failure_text(code: int | str | None, title: str) -> str:
    """The text for Chatwoot's ``external_error``: the hint for a closed 24-hour window, else
    ``"<code>: <title>"`` (just the title without a code)."""
    if _as_code(code) == WINDOW_CLOSED_CODE:
        return WINDOW_CLOSED_HINT
    return f"{code}: {title}" if code is not None else title
