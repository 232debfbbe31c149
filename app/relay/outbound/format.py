"""Chatwoot (CommonMark) markdown ▸ WhatsApp formatting, for agents' replies.

WhatsApp knows ``*bold*``, ``_italic_``, ``~strike~``, ````` ```mono``` `````, ``> quote`` and
``- `` / ``1. `` lists, and formats only where markers wrap non-blank text at word boundaries.
So markers are converted only at word boundaries too: ``2*3*4``, ``snake_case_names``, URLs,
e-mail addresses and code are never touched (CommonMark would italicise ``foo*bar*baz``; WhatsApp
could not show that anyway). Links become ``text (url)``. Backslash escapes (``\\*``) and HTML
entities (``&amp;``) become the characters they stand for; WhatsApp has no escape, so an escaped
marker pair may still format there.

The reverse direction is :mod:`app.relay.inbound.render`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from functools import partial

# Private-use characters stand in for converted markers and protected spans while converting.
_BOLD, _ITALIC, _STRIKE = "\ue010", "\ue011", "\ue012"
_WHATSAPP = {_BOLD: "*", _ITALIC: "_", _STRIKE: "~"}
_SLOT = re.compile("\ue000(\\d+)\ue001")
_RESERVED = re.compile("[\ue000\ue001\ue010-\ue012]")

# ---- block level ----
_FENCE_OPEN = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_THEMATIC = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_QUOTE = re.compile(r"^ {0,3}(?:>[ \t]?)+(.*)$")
_BULLET = re.compile(r"^([ \t]*)[-*+][ \t]+(.*)$")
_ORDERED = re.compile(r"^([ \t]*)(\d{1,9})[.)][ \t]+(.*)$")

# ---- inline ----
_PUNCT = r"!-/:-@\[-`{-~"
_ESCAPE_OR_CODE = re.compile(rf"\\([{_PUNCT}])|(`+)(?!`)(.+?)(?<!`)\2(?!`)")
_AUTOLINK = re.compile(
    r"<((?:https?|ftp|mailto):[^\s<>]*|[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)>",
    re.IGNORECASE,
)
_LINK = re.compile(
    r"(!?)\[((?:[^\[\]]|\[[^\[\]]*\])*)\]"  # [text], one level of nested brackets
    r"\([ \t]*(<[^<>\n]*>|(?:[^\s()]|\([^\s()]*\))*)"  # destination, balanced parens
    r"(?:[ \t]+(?:\"[^\"]*\"|'[^']*'|\([^()]*\)))?[ \t]*\)"  # optional title
)
_URL = re.compile(r"(?:https?://|www\.)[^\s<>\ue010-\ue012]+", re.IGNORECASE)
_URL_TRAILING = ".,;:!?'\""
_EMAIL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_MARKER_CHARS = "*_~"


def _pair(marker: str) -> re.Pattern[str]:
    """``marker``-wrapped text on one line: the opening marker neither follows a letter, digit
    or marker character nor precedes a blank; the closing one mirrors it."""
    m, c = re.escape(marker), re.escape(marker[0])
    opening = rf"(?<![^\W_])(?<!{c}){m}(?=\S)"
    closing = rf"(?<=\S){m}(?!{c})(?![^\W_])"
    return re.compile(rf"{opening}(.+?){closing}")


# Bold before italic, so ``**`` is never read as two italic markers.
_EMPHASIS = (
    (_pair("**"), _BOLD),
    (_pair("__"), _BOLD),
    (_pair("~~"), _STRIKE),
    (_pair("*"), _ITALIC),
    (_pair("_"), _ITALIC),
)


class _Slots:
    """Finished pieces of output, kept out of reach of later passes."""

    def __init__(self) -> None:
        self._pieces: list[str] = []

    def keep(self, piece: str) -> str:
        self._pieces.append(piece)
        return f"\ue000{len(self._pieces) - 1}\ue001"

    def restore(self, text: str) -> str:
        """Put the pieces back (a piece may hold earlier slots, e.g. an escape inside a URL)."""
        for _ in range(len(self._pieces) + 1):
            if not _SLOT.search(text):
                break
            text = _SLOT.sub(lambda m: self._pieces[int(m.group(1))], text)
        return text


def markdown_to_whatsapp(text: str) -> str:
    """Convert an agent's Chatwoot markdown to what WhatsApp shows the same way."""
    slots = _Slots()
    lines = _RESERVED.sub("", text.replace("\r\n", "\n").replace("\r", "\n")).split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        fence = _FENCE_OPEN.match(lines[i])
        if fence and not (fence.group(2)[0] == "`" and "`" in fence.group(3)):
            block, i = _fenced_block(lines, i, fence)
            out.append(slots.keep(block))
            continue
        if i + 1 < len(lines) and _is_setext_heading(lines[i], lines[i + 1]):
            out.append(_heading(lines[i].strip(), slots))
            i += 2
            continue
        out.append(_block_line(lines[i], slots))
        i += 1
    return slots.restore(_finish("\n".join(out)))


def signed(text: str, agent_name: str | None) -> str:
    """``text`` under the agent's name in bold (``*Jane*:``), as peers sign replies."""
    name = " ".join((agent_name or "").replace("*", "").split())
    if not name:
        return text
    return f"*{name}*:\n{text}" if text else f"*{name}*:"


# ---- blocks ----
def _fenced_block(lines: list[str], start: int, fence: re.Match[str]) -> tuple[str, int]:
    """A fenced code block as one WhatsApp monospace block; returns it and the next index.

    An unclosed fence runs to the end, as in CommonMark. The info string is dropped.
    """
    indent, marker = len(fence.group(1)), fence.group(2)
    closing = re.compile(rf"^ {{0,3}}{re.escape(marker[0])}{{{len(marker)},}}[ \t]*$")
    body: list[str] = []
    i = start + 1
    while i < len(lines) and not closing.match(lines[i]):
        line = lines[i]
        strip = len(line) - len(line.lstrip(" "))
        body.append(line[min(indent, strip) :])
        i += 1
    content = "\n".join(body)
    return (f"```{content}```" if content.strip() else ""), i + 1


def _is_setext_heading(line: str, underline: str) -> bool:
    """``Title`` over ``===`` / ``---``: only under a plain paragraph line."""
    if not line.strip() or not _SETEXT.match(underline):
        return False
    if line.startswith("    ") or _THEMATIC.match(line):
        return False
    plain = not any(p.match(line) for p in (_HEADING, _QUOTE, _BULLET, _ORDERED, _FENCE_OPEN))
    return plain


def _block_line(line: str, slots: _Slots) -> str:
    """One line outside code blocks: heading, quote, list item, rule or paragraph text."""
    line = _drop_hard_break(line.rstrip())
    if not line.strip():
        return ""
    if _THEMATIC.match(line):
        return line.strip()
    heading = _HEADING.match(line)
    if heading:
        return _heading(heading.group(2) or "", slots)
    quote = _QUOTE.match(line)
    if quote:
        inner = _block_line(quote.group(1), slots)
        return f"> {inner}" if inner else ">"
    bullet = _BULLET.match(line)
    if bullet:
        return f"{bullet.group(1)}- {_inline(bullet.group(2), slots)}"
    ordered = _ORDERED.match(line)
    if ordered:
        return f"{ordered.group(1)}{int(ordered.group(2))}. {_inline(ordered.group(3), slots)}"
    return _inline(line, slots)


def _drop_hard_break(line: str) -> str:
    """A trailing backslash is a CommonMark hard line break (``\\\\`` is a literal one)."""
    run = len(line) - len(line.rstrip("\\"))
    return line[:-1].rstrip() if run % 2 else line


def _heading(content: str, slots: _Slots) -> str:
    """A heading in bold; bold inside it would close the outer bold early, so it goes."""
    inner = _inline(content.strip(), slots).replace(_BOLD, "").strip()
    return f"{_BOLD}{inner}{_BOLD}" if inner else ""


# ---- inline ----
def _inline(text: str, slots: _Slots) -> str:
    """Escapes and code spans (one left-to-right pass, as CommonMark reads them), autolinks,
    links, then bare URLs, e-mail addresses and emphasis."""
    text = _ESCAPE_OR_CODE.sub(lambda m: _escape_or_code(m, slots), text)
    text = _AUTOLINK.sub(lambda m: slots.keep(_decode(m.group(1))), text)
    text = _LINK.sub(lambda m: _link(m, slots), text)
    return _plain(text, slots)


def _escape_or_code(match: re.Match[str], slots: _Slots) -> str:
    if match.group(1) is not None:
        return slots.keep(match.group(1))
    code = match.group(3)
    if len(code) > 2 and code[0] == code[-1] == " " and code.strip():
        code = code[1:-1]  # CommonMark strips one space on each side
    return slots.keep(f"```{code}```")


def _link(match: re.Match[str], slots: _Slots) -> str:
    """``[text](url)`` ▸ ``text (url)``; just the URL when the text says nothing more."""
    label = match.group(2).strip()
    url = _decode(slots.restore(match.group(3)).strip().strip("<>").strip())
    if not url:
        return _plain(label, slots)
    shown = _decode(slots.restore(label)).strip()
    bare = re.sub(r"^(?:https?://|mailto:)", "", url, flags=re.IGNORECASE).rstrip("/")
    if not shown or shown in (url, bare) or shown.rstrip("/") == bare:
        return slots.keep(shown if url.lower().startswith("mailto:") and shown else url)
    # The label is finished here, so the pass over the rest of the line cannot re-read it.
    return f"{slots.keep(_finish(_plain(label, slots)))} ({slots.keep(url)})"


def _plain(text: str, slots: _Slots) -> str:
    """Protect bare URLs and e-mail addresses, then convert emphasis markers."""
    text = _URL.sub(lambda m: _keep_url(m, slots.keep), text)
    text = _EMAIL.sub(lambda m: slots.keep(m.group(0)), text)
    for pattern, sentinel in _EMPHASIS:
        text = pattern.sub(partial(_emphasis, sentinel=sentinel), text)
    return text


def _emphasis(match: re.Match[str], sentinel: str) -> str:
    """Wrap the match, unless the whole delimiter run touches a blank (``___ and ___``)."""
    inner = match.group(1).strip(match.group(0)[0])
    if not inner or inner[0].isspace() or inner[-1].isspace():
        return match.group(0)
    return f"{sentinel}{match.group(1)}{sentinel}"


def _keep_url(match: re.Match[str], keep: Callable[[str], str]) -> str:
    """Protect a URL; trailing punctuation stays outside, and so do closing markers when the
    URL is wrapped in them (``**https://x.y**``)."""
    url, start = match.group(0), match.start()
    wrappers = ""
    while start and match.string[start - 1] in _MARKER_CHARS:
        start -= 1
        wrappers += match.string[start]
    end = len(url)
    while end and (
        url[end - 1] in _URL_TRAILING + wrappers
        or (url[end - 1] == ")" and url[:end].count("(") < url[:end].count(")"))
    ):
        end -= 1
    return keep(_decode(url[:end])) + url[end:]


def _finish(text: str) -> str:
    """Sentinels ▸ WhatsApp markers, entities ▸ characters (slots are restored after)."""
    for sentinel, marker in _WHATSAPP.items():
        text = text.replace(sentinel, marker)
    return _decode(text)


def _decode(text: str) -> str:
    """HTML character references with their ``;`` (``&amp;``, ``&#39;``). Without it they stay,
    so ``?a=1&copy=2`` in a URL is not mangled."""

    def one(match: re.Match[str]) -> str:
        char = html.unescape(match.group(0))
        return match.group(0) if _RESERVED.search(char) else char

    return _ENTITY.sub(one, text)
