"""Text a server chose, made safe to store in a report and print on a terminal."""

from __future__ import annotations

# Long enough for any honest reason phrase or header value worth showing.
SHOWN_CHARS = 200


def printable(text: str | None, limit_chars: int = SHOWN_CHARS) -> str | None:
    """One line of printable characters, cut to `limit_chars`; None stays None.

    A reason phrase such as "503 \\x1b[2J FAKE UP" would otherwise clear the
    reader's terminal, or forge a line, in every report format that shows it.
    Anything unprintable, line breaks and bidi controls included, becomes "?".
    """
    if text is None:
        return None
    cut = text[:limit_chars]
    shown = "".join(ch if ch.isprintable() else "?" for ch in cut)
    return shown + "..." if len(text) > limit_chars else shown
