r"""The audited escaping functions, one per output language: DOT strings, Graphviz HTML-like labels, markup.

Every string that reaches DOT, SVG or HTML goes through one of these three
(names, titles, relation and model names, metadata values and file names come
from files someone else wrote); only numbers the code formats itself and
constants written in the code are interpolated as they are. Each function
takes any value (``str()`` of it) and returns text that cannot end the
construct it is placed in, whatever the input holds.

:func:`dot_string`
    A whole quoted DOT string (quotes included), for any attribute value:
    ``label``, ``tooltip``, ``color``. Nothing inside can close the string,
    continue a line or be read as a Graphviz escape: backslashes are doubled
    (``\N``, ``\G`` and a trailing ``\`` stay literal text), quotes escaped,
    newlines written ``\n``, other control characters (and lone surrogates
    and non-characters, which cannot be encoded or are not XML) blanked, and
    ``&`` written ``&amp;`` so that entities in the input are shown literally
    rather than decoded by Graphviz. ``dot`` shows it as a label exactly as the
    input text (blanked characters aside). Graphviz 2.43 substitutes ``\N``
    and the like once more in tooltips, so a backslash there may still show
    as a name: no text from a file goes into a tooltip, only node names
    (checked against the graph) and numbers.
:func:`dot_html`
    Text for inside a Graphviz HTML-like label (``<<TABLE>...</TABLE>>``),
    as element text or a quoted attribute value. It is :func:`markup` of the
    text with backslashes doubled (Graphviz also reads ``\N``, ``\G`` escapes
    in HTML-like labels) and tabs and newlines turned into spaces (Graphviz
    drops a newline there; a line break is ``<BR/>``, which only the caller
    writes). It holds no ``<`` or ``>``, so the DOT lexer's count of angle
    brackets that delimits the label is unchanged. Text longer than
    :data:`DOT_HTML_MAX` characters is cut there (ending ``…``): Graphviz
    refuses a whole HTML-like label longer than 16384 bytes, and one escaped
    character takes at most 6.
:func:`markup`
    Text or a quoted attribute value for HTML, SVG or XML: ``&``, ``<``,
    ``>``, ``"`` and ``'`` escaped, control characters other than tab and
    newline removed (XML forbids them, HTML calls them parse errors), as are
    lone surrogates and non-characters. It makes no URL safe: a link built
    from a name must be a relative path percent-encoded with
    :func:`urllib.parse.quote` (which also encodes ``:``, so no
    ``javascript:`` scheme survives) and then passed through :func:`markup`,
    as :func:`circuits.report.html.href` does.

Identifiers are not escaped but made: node ids in DOT are built only from
``[A-Za-z0-9_]`` (:func:`circuits.draw.dot._id`) out of node names that
:class:`~circuits.circuit.Circuit` has already checked against its graph.
"""

from __future__ import annotations

import html
import re
from typing import Any

__all__ = ["DOT_HTML_MAX", "dot_html", "dot_string", "markup"]

DOT_HTML_MAX = 500
"""The most characters of one text :func:`dot_html` keeps (a legend row; a few fit one label)."""

_NONCHARACTERS = "\ufdd0-\ufdef" + "".join(
    f"{chr(p * 0x10000 + 0xFFFE)}{chr(p * 0x10000 + 0xFFFF)}" for p in range(17)
)
_DOT_BLANKED = re.compile(f"[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff{_NONCHARACTERS}]")
_MARKUP_REMOVED = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff{_NONCHARACTERS}]")


def dot_string(text: Any) -> str:
    r"""``text`` as a quoted DOT string nothing can break out of.

    Backslashes are doubled (a trailing one would escape the closing quote,
    and Graphviz reads ``\N`` or ``\G`` as names), quotes escaped, newlines kept
    as ``\n``, other control characters blanked, and ``&`` written ``&amp;``
    (Graphviz reads HTML entities in labels).

    >>> print(dot_string('a"b\\'), dot_string("x & y"))
    "a\"b\\" "x &amp; y"
    >>> print(dot_string('X\\"]; evil [URL=<javascript:alert(1)>]; //\n\x00\\N'))
    "X\\\"]; evil [URL=<javascript:alert(1)>]; //\n \\N"
    """
    clean = _DOT_BLANKED.sub(" ", str(text)).replace("\\", "\\\\").replace("&", "&amp;")
    return '"' + clean.replace('"', '\\"').replace("\n", "\\n") + '"'


def dot_html(text: Any) -> str:
    r"""``text`` for inside a Graphviz HTML-like label: element text or a quoted attribute value.

    :func:`markup` of the text with backslashes doubled and tabs and newlines
    made spaces, cut to :data:`DOT_HTML_MAX` characters.

    >>> print(dot_html('<b>"R&D"</b> \\N\nnext'))
    &lt;b&gt;&quot;R&amp;D&quot;&lt;/b&gt; \\N next
    >>> len(dot_html("x" * 10_000)), dot_html("x" * 10_000)[-2:]
    (500, 'x…')
    """
    text = str(text)
    if len(text) > DOT_HTML_MAX:
        text = text[: DOT_HTML_MAX - 1] + "…"
    return markup(text.replace("\\", "\\\\").replace("\t", " ").replace("\n", " "))


def markup(text: Any) -> str:
    """``text`` as HTML, SVG or XML text or quoted attribute value (tab and newline kept).

    >>> markup('<script>alert("x")</script> & co')
    '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co'
    >>> markup("\\"><img src=x onerror='alert(1)'>\\x00\\x1b")
    '&quot;&gt;&lt;img src=x onerror=&#x27;alert(1)&#x27;&gt;'
    """
    return html.escape(_MARKUP_REMOVED.sub("", str(text)), quote=True)
