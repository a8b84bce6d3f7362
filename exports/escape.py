"""The one escape rule of the export (:data:`TEXT_ESCAPE_RULE`): how a writer carries a
character its format cannot hold, or would drop, so that an independent reader with the rule
alone gets the exact text back. Stated in the manifest and the data dictionary of every
export."""

import re

from django.utils.translation import gettext_noop

ESCAPE = re.compile(r"\\u\{([0-9a-f]{1,6})\}")
BLANK_RUN = 64
TEXT_ESCAPE_RULE = gettext_noop(
    "Where a format cannot hold a character, or would drop it, the text carries it as "
    "\\u{hex} (its Unicode code point in lower-case hexadecimal: µ is \\u{b5}, "
    "中 is \\u{4e2d}): in SAS XPORT every character outside printable ASCII except "
    "tab, line feed and carriage return; in SPSS, Excel and ODM the control characters they "
    "cannot store; in SAS XPORT and SPSS the spaces that end a text (their readers drop "
    "trailing blanks) and every 64th space of a run of spaces. The characters \\u{ of the "
    "text itself are written \\u{5c}u{. CSV, Stata and R carry every text as it is. To get "
    "the text back, join a variable's parts in order (XPORT: the variable's value, then "
    "the TEXT of its rows in the companion file xpt/<member cut to 6>_c.xpt, matched by ROW "
    "and VARNAME, in PIECE order; SPSS and Excel: name, name_part2, name_part3 ...), then "
    "replace each \\u{hex} by its character, left to right (Python: "
    "re.sub(r'\\\\u\\{([0-9a-f]+)\\}', lambda m: chr(int(m[1], 16)), text)).")

XPT_LONG_TEXT_RULE = gettext_noop(
    "SAS XPORT v5 holds at most 200 bytes in a character variable. Each xpt/<member>.xpt "
    "has one row per record; a text variable holds the first piece of each value (the "
    "column is as wide as keeps the files smallest, at most 200 bytes), and only a value "
    "longer than its column continues, in the companion file xpt/<member cut to 6>_c.xpt "
    "(listed with the files, absent when no value is longer): one row per further piece, "
    "ROW (the record's row number in the main file, from 1), VARNAME (the variable), PIECE "
    "(2, 3 ...) and TEXT (the piece, at most 200 bytes; pieces end before a space where "
    "they can, so a piece may start with one). The text is the variable's value followed "
    "by its pieces in PIECE order, then unescaped by the text escape rule. SAS: proc sort "
    "data=c; by row varname piece; run; then for each (row, varname) append TEXT to the "
    "variable of observation ROW (length the variable $32767 first). R (haven): m <- "
    "read_xpt('audit.xpt'); c <- read_xpt('audit_c.xpt'); c <- c[order(c$ROW, c$PIECE), ]; "
    "for (i in seq_len(nrow(c))) m[[c$VARNAME[i]]][c$ROW[i]] <- "
    "paste0(m[[c$VARNAME[i]]][c$ROW[i]], c$TEXT[i]).")


def _code_point(match: re.Match) -> str:
    """The escapes of a run of characters (patterns match runs: one call per run)."""
    return "".join([f"\\u{{{ord(c):x}}}" for c in match[0]])


def escape_text(text: str, forbidden: re.Pattern, *, blanks: bool) -> str:
    """``text`` with what the format cannot carry written as ``\\u{hex}``
    (:data:`TEXT_ESCAPE_RULE`); :func:`unescape_text` gives ``text`` back. Text that needs
    no escape is returned unchanged."""
    if "\\u{" not in text and not forbidden.search(text) and not (
            blanks and (text.endswith(" ") or " " * BLANK_RUN in text)):
        return text
    text = text.replace("\\u{", "\\u{5c}u{")
    text = forbidden.sub(_code_point, text)
    if blanks:
        body = text.rstrip(" ")
        text = body + "\\u{20}" * (len(text) - len(body))
        text = text.replace(" " * BLANK_RUN, " " * (BLANK_RUN - 1) + "\\u{20}")
    return text


def unescape_text(text: str) -> str:
    """The inverse of :func:`escape_text` (what an independent reader does by the rule)."""
    return ESCAPE.sub(lambda m: chr(int(m[1], 16)), text)
