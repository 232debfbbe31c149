"""Chatwoot (CommonMark) markdown ▸ WhatsApp formatting, for agents' replies.

Chatwoot renders agents' messages with markdown-it, so they are parsed here with markdown-it-py
(CommonMark plus ``~~strike~~``) and the syntax tree is written out in WhatsApp's markers:
``*bold*``, ``_italic_``, ``~strike~``, ````` ```mono``` `````, ``> quote`` and ``- `` / ``1. ``
lists; headings become bold lines, links ``text (url)``. Blank lines between blocks are kept as
the agent typed them.

WhatsApp formats only where markers wrap text at word boundaries on one line, so emphasis that
CommonMark finds inside a word (``2*3*4``) or across a line break keeps its original markers.
Bare URLs are read as text, so their ``_`` and ``*`` are never emphasis. Backslash escapes and
HTML entities become the characters they stand for; WhatsApp has no escape, so an escaped marker
pair may still format there.

The reverse direction is :mod:`app.relay.inbound.render`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from markdown_it import MarkdownIt
from markdown_it.rules_inline import StateInline
from markdown_it.tree import SyntaxTreeNode

# Private-use characters the earlier, placeholder-based converter reserved; still dropped from
# input and never produced from an entity, so no message can carry them.
_RESERVED = re.compile("[\ue000\ue001\ue010-\ue012]")
_MARKERS = {"strong": "*", "em": "_", "s": "~"}
_SCHEME = re.compile(r"(?:^|[^\w.+-])(https?)$", re.IGNORECASE)
_URL_REST = re.compile(r"://[^\s<>\\]+")
_URL_TRAILING = ".,;:!?'\"*_~"


class _Parser(MarkdownIt):
    """Links keep their destination as written (WhatsApp shows it; no percent-encoding)."""

    def normalizeLink(self, url: str) -> str:
        return url


def _bare_url(state: StateInline, silent: bool) -> bool:
    """At the ``:`` of ``http(s)://``: the URL up to a blank, ``<``, ``>`` or ``\\`` is text, so
    markers inside it are not emphasis. Trailing punctuation and unbalanced ``)`` stay outside."""
    scheme = _SCHEME.search(state.pending)
    rest = _URL_REST.match(state.src, state.pos, state.posMax)
    if scheme is None or rest is None or state.linkLevel > 0:
        return False
    url = rest.group(0)
    while url[-1] in _URL_TRAILING or (url[-1] == ")" and url.count("(") < url.count(")")):
        url = url[:-1]
    if len(url) <= 3:
        return False
    if not silent:
        state.pending += url
    state.pos += len(url)
    return True


_MD = _Parser("commonmark").enable("strikethrough").disable("text_join")
_MD.inline.ruler.before("linkify", "bare_url", _bare_url)


# A line no CommonMark construct can start, continue or end in: letters, digits, inner spaces
# and punctuation that is never syntax (no list number, no indentation, no hard break).
_PLAIN_LINE = re.compile(r"(?!\d+\.)(?:[^\W_](?:[^\W_]|[ ,.;:?!'\"])*(?<! ))?")


def markdown_to_whatsapp(text: str) -> str:
    """Convert an agent's Chatwoot markdown to what WhatsApp shows the same way."""
    if all(_PLAIN_LINE.fullmatch(line) for line in text.split("\n")):
        return text.strip()  # most replies: what parsing them gives, at a tenth of the cost
    return parsed_to_whatsapp(text)


def parsed_to_whatsapp(text: str) -> str:
    """:func:`markdown_to_whatsapp` without its shortcut for plain text."""
    source = _RESERVED.sub("", text)
    tree = SyntaxTreeNode(_MD.parse(source))
    return _Writer(source.splitlines()).blocks(tree.children)


def signed(text: str, agent_name: str | None) -> str:
    """``text`` under the agent's name in bold (``*Jane*:``), as peers sign replies."""
    name = " ".join((agent_name or "").replace("*", "").split())
    if not name:
        return text
    return f"*{name}*:\n{text}" if text else f"*{name}*:"


class _Writer:
    """Writes a markdown-it syntax tree as WhatsApp text."""

    def __init__(self, lines: list[str]) -> None:
        self._lines = lines

    # ---- blocks ----
    def blocks(
        self, nodes: Sequence[SyntaxTreeNode], write: Callable[[SyntaxTreeNode], str] | None = None
    ) -> str:
        """Blocks one per line, with as many blank lines between them as in the source."""
        out, end = "", None
        for node in nodes:
            start, stop = node.map or (end or 0, end or 0)
            if end is not None:
                out += "\n" * (start - end + 1)
            out += (write or self.block)(node)
            end = stop
            while end > start and not self._lines[end - 1].strip():
                end -= 1  # a list's range takes in the blank lines after it
        return out

    def block(self, node: SyntaxTreeNode) -> str:
        kind = node.type
        if kind in ("paragraph", "heading"):
            inline = self.inline(node.children[0].children, heading=kind == "heading")
            if kind == "paragraph" or not inline.strip():
                return inline if kind == "paragraph" else ""
            return f"*{inline.strip()}*"
        if kind in ("fence", "code_block"):
            code = node.content.removesuffix("\n")
            return f"```{code}```" if code.strip() else ""
        if kind in ("bullet_list", "ordered_list"):
            return self.blocks(node.children, self.list_item)
        if kind == "blockquote":
            return self.quote(node)
        if kind == "hr" and node.map:
            return self._lines[node.map[0]].strip()
        return node.content.rstrip("\n")  # html_block

    def list_item(self, node: SyntaxTreeNode) -> str:
        """``- item`` / ``3. item``; the item's further lines are indented under its text."""
        ordered = node.parent is not None and node.parent.type == "ordered_list"
        number = f"{int(node.info)}" if ordered else ""
        body = self.blocks(node.children)
        if not body:
            return number + node.markup
        bullet = f"{number}. " if ordered else "- "
        first, *rest = body.split("\n")
        indent = " " * len(bullet)
        return "\n".join([bullet + first, *(indent + line if line else "" for line in rest)])

    def quote(self, node: SyntaxTreeNode) -> str:
        """One level of ``> `` (WhatsApp shows no deeper quotes)."""

        def flat(child: SyntaxTreeNode) -> str:
            if child.type == "blockquote":
                return self.blocks(child.children, flat)
            return self.block(child)

        body = self.blocks(node.children, flat)
        return "\n".join(f"> {line}" if line else ">" for line in body.split("\n"))

    # ---- inline ----
    def inline(self, nodes: Sequence[SyntaxTreeNode], heading: bool = False) -> str:
        """Inline nodes; emphasis touching a word or spanning lines keeps its markers."""
        nodes = _nonempty(nodes)
        parts = [self.span(node, heading) for node in nodes]
        for i, node in enumerate(nodes):
            if node.type not in _MARKERS:
                continue
            before = parts[i - 1][-1:] if i else ""
            after = parts[i + 1][:1] if i + 1 < len(parts) else ""
            inner = self.inline(node.children, heading)
            if before.isalnum() or after.isalnum() or "\n" in inner:
                parts[i] = f"{node.markup}{inner}{node.markup}"
        return "".join(parts)

    def span(self, node: SyntaxTreeNode, heading: bool) -> str:
        kind = node.type
        if kind in _MARKERS:
            return self.emphasis(node, heading)
        if kind == "code_inline":
            return f"```{node.content}```"
        if kind in ("softbreak", "hardbreak"):
            return "\n"
        if kind == "text_special" and _RESERVED.search(node.content):
            return node.markup  # an entity for a reserved character stays as written
        if kind == "link":
            return _link(self.inline(node.children, heading), str(node.attrs.get("href", "")))
        if kind == "image":
            return _link(self.inline(node.children, heading), str(node.attrs.get("src", "")))
        return node.content  # text, text_special, html_inline

    def emphasis(self, node: SyntaxTreeNode, heading: bool) -> str:
        """Bold outside italic for ``***x***``; no bold inside a heading (it is bold already)."""
        children = _nonempty(node.children)
        only = children[0] if len(children) == 1 else None
        if node.type == "em" and only is not None and only.type == "strong":
            inner = f"_{self.inline(only.children, heading)}_"
            return inner if heading else f"*{inner}*"
        inner = self.inline(node.children, heading)
        if heading and node.type == "strong":
            return inner
        marker = _MARKERS[node.type]
        return f"{marker}{inner}{marker}"


def _nonempty(nodes: Sequence[SyntaxTreeNode]) -> list[SyntaxTreeNode]:
    """Without the empty text left where emphasis delimiters were."""
    return [node for node in nodes if node.type != "text" or node.content]


def _link(label: str, url: str) -> str:
    """``text (url)``; just the URL when the text says nothing more (the address for mailto)."""
    shown = label.strip()
    if not url:
        return shown
    bare = re.sub(r"^(?:https?://|mailto:)", "", url, flags=re.IGNORECASE).rstrip("/")
    if not shown or shown in (url, bare) or shown.rstrip("/") == bare:
        return shown if url.lower().startswith("mailto:") and shown else url
    return f"{label} ({url})"
