"""Agents' Chatwoot markdown ▸ WhatsApp formatting, and the agent signature."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.relay.inbound.render import whatsapp_to_markdown
from app.relay.outbound.format import markdown_to_whatsapp, parsed_to_whatsapp, signed

CASES = [
    # emphasis
    ("**bold**", "*bold*"),
    ("__bold__", "*bold*"),
    ("*italic*", "_italic_"),
    ("_italic_", "_italic_"),
    ("~~gone~~", "~gone~"),
    ("***both***", "*_both_*"),
    ("**bold _inner_ bold**", "*bold _inner_ bold*"),
    ("a **b** c *d* e ~~f~~ g", "a *b* c _d_ e ~f~ g"),
    ("(**x**), *y*.", "(*x*), _y_."),
    ("**Olá, mundo** ✨", "*Olá, mundo* ✨"),
    ("**two words**", "*two words*"),
    # code
    ("`x`", "```x```"),
    ("use `rm -rf *.tmp` now", "use ```rm -rf *.tmp``` now"),
    ("`**not bold**`", "```**not bold**```"),
    ("``a ` b``", "```a ` b```"),
    ("` padded `", "```padded```"),
    ("```\nline *1*\n  line 2\n```", "```line *1*\n  line 2```"),
    ("```python\nprint('x')\n```\nafter **b**", "```print('x')```\nafter *b*"),
    ("~~~\ncode\n~~~", "```code```"),
    ("say ```inline``` here", "say ```inline``` here"),
    ("```inline```", "```inline```"),
    ("```\nunclosed\nblock", "```unclosed\nblock```"),
    ("```\n```", ""),
    ("```\n&amp; <b>\n```", "```&amp; <b>```"),
    # links
    ("[the docs](https://example.com/docs)", "the docs (https://example.com/docs)"),
    ("[https://example.com](https://example.com)", "https://example.com"),
    ("[example.com](https://example.com/)", "https://example.com/"),
    ("<https://example.com/a_b_c>", "https://example.com/a_b_c"),
    ("<jane@acme.example>", "jane@acme.example"),
    ("[mail me](mailto:jane@acme.example)", "mail me (mailto:jane@acme.example)"),
    ("[jane@acme.example](mailto:jane@acme.example)", "jane@acme.example"),
    ("[**Docs** page](https://x.example/d)", "*Docs* page (https://x.example/d)"),
    ("[x](<https://x.example/a b>)", "x (https://x.example/a b)"),
    (
        "[wiki](https://en.wikipedia.org/wiki/Foo_(bar))",
        "wiki (https://en.wikipedia.org/wiki/Foo_(bar))",
    ),
    ('[t](https://x.example "Title")', "t (https://x.example)"),
    ("![diagram](https://x.example/d.png)", "diagram (https://x.example/d.png)"),
    ("![](https://x.example/d.png)", "https://x.example/d.png"),
    ("[empty]()", "empty"),
    ("[a](https://x.example/?q=1&amp;r=2)", "a (https://x.example/?q=1&r=2)"),
    # headings
    ("# Title", "*Title*"),
    ("### Step **two** ###", "*Step two*"),
    ("#hashtag stays", "#hashtag stays"),
    ("Setext\n===", "*Setext*"),
    ("Thanks\n---\nJane", "*Thanks*\nJane"),
    # lists and quotes
    ("- one\n* two\n+ three", "- one\n- two\n- three"),
    ("1. first\n2) second\n10. tenth", "1. first\n2. second\n10. tenth"),
    ("- **bold** item\n  - nested _it_", "- *bold* item\n  - nested _it_"),
    ("> quoted *text*", "> quoted _text_"),
    ("> - quoted list", "> - quoted list"),
    (">> nested", "> nested"),
    (">", ">"),
    ("---", "---"),
    ("* * *", "* * *"),
    # escapes, entities, breaks
    (r"\*not italic\*", "*not italic*"),
    (r"1\. not a list", "1. not a list"),
    (r"\# not a heading", "# not a heading"),
    (r"a \\ b", "a \\ b"),
    (r"price \$5 \_x\_", "price $5 _x_"),
    ("Tom &amp; Jerry &lt;3 &quot;hi&quot; &#39;x&#39; &#x1F600;", "Tom & Jerry <3 \"hi\" 'x' 😀"),
    ("?a=1&copy=2 stays", "?a=1&copy=2 stays"),
    ("&unknown; stays", "&unknown; stays"),
    ("line one\\\nline two", "line one\nline two"),
    ("trailing  \nnext", "trailing\nnext"),
    ("windows\r\nline", "windows\nline"),
    ("para\n\n\npara", "para\n\n\npara"),
]


@pytest.mark.parametrize(("markdown", "whatsapp"), CASES)
def test_markdown_to_whatsapp(markdown: str, whatsapp: str) -> None:
    assert markdown_to_whatsapp(markdown) == whatsapp


UNTOUCHED = [
    "plain text, nothing to do",
    "2*3*4 = 24 and 2 * 3 * 4 = 24",
    "a*b and c*d",
    "snake_case_name and __dunder_ish and x_1",
    "file_name_v2.py",
    "https://example.com/path_with_underscores/*star*?q=a_b&r=~c~",
    "see https://example.com/a_b_c_ for more",
    "www.example.com/x_y_z",
    "jane_doe@acme.example and first.last+tag@mail.example.org",
    "C:\\Users\\jane",
    "5 * 3",
    "**",
    "* ",
    "_",
    "~ approx ~",
    "emoji 😀 and ünïcödé",
    "#1 priority",
    "100%_done",
    "fill in ___ and ___ here",
    "** not bold ** and * not italic *",
    "price* and *conditions",
    "",
]


@pytest.mark.parametrize("text", UNTOUCHED)
def test_text_without_markdown_is_untouched(text: str) -> None:
    assert markdown_to_whatsapp(text) == text.rstrip()


def test_url_wrapped_in_bold_keeps_its_punctuation_outside() -> None:
    assert markdown_to_whatsapp("**https://x.example/a_b**.") == "*https://x.example/a_b*."
    assert markdown_to_whatsapp("(see https://x.example/a).") == "(see https://x.example/a)."


def test_escaped_underscores_inside_a_url_are_restored_in_place() -> None:
    assert markdown_to_whatsapp(r"https://x.example/a\_b\_c") == "https://x.example/a_b_c"


def test_markers_never_span_lines() -> None:
    assert markdown_to_whatsapp("*start\nend*") == "*start\nend*"
    assert markdown_to_whatsapp("**a\nb**") == "**a\nb**"


def test_private_use_characters_cannot_forge_placeholders() -> None:
    assert markdown_to_whatsapp("a\ue0000\ue001b \ue010x\ue010") == "a0b x"
    assert markdown_to_whatsapp("&#xe000;0&#xe001;") == "&#xe000;0&#xe001;"


@pytest.mark.parametrize(
    "whatsapp",
    [
        "*bold* and _italic_ and ~strike~",
        "a *b* c https://x.example/a_b d",
        "```mono```",
        "snake_case and 2*3*4",
    ],
)
def test_round_trip_with_the_inbound_direction(whatsapp: str) -> None:
    """What a customer wrote, relayed into Chatwoot and quoted back, reads the same."""
    assert markdown_to_whatsapp(whatsapp_to_markdown(whatsapp)) == whatsapp


def test_long_message_keeps_structure() -> None:
    markdown = (
        "## Your order\n"
        "Hi **Maria**, here is what we found:\n"
        "\n"
        "1. The part `X-200` is *in stock*.\n"
        "2. Shipping: see [tracking](https://track.example/abc?id=1&amp;lang=de).\n"
        "\n"
        "> Please reply with your address.\n"
        "\n"
        "Thanks &amp; regards"
    )
    assert markdown_to_whatsapp(markdown) == (
        "*Your order*\n"
        "Hi *Maria*, here is what we found:\n"
        "\n"
        "1. The part ```X-200``` is _in stock_.\n"
        "2. Shipping: see tracking (https://track.example/abc?id=1&lang=de).\n"
        "\n"
        "> Please reply with your address.\n"
        "\n"
        "Thanks & regards"
    )


# ---- signature ----
def test_signed_puts_the_name_in_bold_above() -> None:
    assert signed("Hello!", "Jane Agent") == "*Jane Agent*:\nHello!"


@pytest.mark.parametrize("name", [None, "", "   ", "**"])
def test_signed_without_a_usable_name_is_unchanged(name: str | None) -> None:
    assert signed("Hello!", name) == "Hello!"


def test_signed_name_cannot_break_the_bold() -> None:
    assert signed("Hi", "Jane *the* Boss\n") == "*Jane the Boss*:\nHi"


def test_signed_empty_text_is_just_the_name() -> None:
    assert signed("", "Jane") == "*Jane*:"


# ---- parser-backed structure (markdown-it) ----
MORE_CASES = [
    ("*a **b** c*", "_a *b* c_"),
    ("~~a **b**~~", "~a *b*~"),
    ("x**y**z", "x**y**z"),
    (
        "[see **this** _and_ `code`](https://x.example/p)",
        "see *this* _and_ ```code``` (https://x.example/p)",
    ),
    ("![a *b*](https://x.example/i.png)", "a _b_ (https://x.example/i.png)"),
    ("- a\n\n  more\n- b", "- a\n\n  more\n- b"),
    ("1. x\n   - y\n2. z", "1. x\n   - y\n2. z"),
    ("line\n\n> q1\n>\n> q2", "line\n\n> q1\n>\n> q2"),
    ("> **quoted** heading\n> # H", "> *quoted* heading\n> *H*"),
    ("<b>hi</b> there", "<b>hi</b> there"),
    ("    indented code", "```indented code```"),
    ("http://x.example/**a**_b_ now", "http://x.example/**a**_b_ now"),
    ("# **all** bold", "*all bold*"),
]


@pytest.mark.parametrize(("markdown", "whatsapp"), MORE_CASES)
def test_markdown_structures(markdown: str, whatsapp: str) -> None:
    assert markdown_to_whatsapp(markdown) == whatsapp


PLAIN = "ab Zé9 0,.;:?!'\""  # what the shortcut for plain text must cover
NEAR_SYNTAX = "_*~`#>-+=)[]<&\\\t"  # and what it must leave to the parser


def _lines(alphabet: str) -> st.SearchStrategy[str]:
    return st.lists(st.text(alphabet, max_size=12), min_size=1, max_size=5).map("\n".join)


@settings(max_examples=500, deadline=None)
@given(st.one_of(_lines(PLAIN), _lines(PLAIN + NEAR_SYNTAX)))
@example("Hello Maria, your order 4411 ships today!")
@example("line one\nline two\n\n\nafter two blanks\n")
@example("1. first\n2. second")
@example("1. a list item, and a lazy line\nafter it")  # "1. …\n   after it"
@example("a hard break  \nbelow")
@example("Total: 3.50 ; ok?  Yes")
def test_the_shortcut_for_plain_text_gives_what_parsing_gives(text: str) -> None:
    assert markdown_to_whatsapp(text) == parsed_to_whatsapp(text)
