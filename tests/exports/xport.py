"""An independent reader of the export's SAS XPORT files, by the documented layout alone
(never the exporter's code): the main file has one row per record, each text variable
holding a value's first piece; a value longer than its column continues in the companion
file ``<member name cut to 6>_c.xpt`` beside it, one row per further piece (ROW, the row
number in the main file from 1; VARNAME; PIECE, 2, 3 …; TEXT). The text is the variable's
value followed by its pieces in PIECE order; the escape rule is left to the caller."""

from pathlib import Path

import pyreadstat


def companion_path(path: Path, member: str) -> Path:
    return Path(path).with_name(f"{member[:6]}_c.xpt")


def read_xport(path, encoding: str = "ascii", **options):
    """``(frame, meta, pieces)``: the main file with every long text rejoined from its
    companion, its metadata, and the number of companion rows (0 when there is none)."""
    path = Path(path)
    frame, meta = pyreadstat.read_xport(path, encoding=encoding, **options)
    companion = companion_path(path, meta.table_name)
    if not companion.exists():
        return frame, meta, 0
    rest, _meta = pyreadstat.read_xport(companion, encoding=encoding)
    assert list(rest.columns) == ["ROW", "VARNAME", "PIECE", "TEXT"]
    frame = frame.copy()
    ordered = rest.sort_values(["ROW", "VARNAME", "PIECE"], kind="stable")
    for (row, name), group in ordered.groupby(["ROW", "VARNAME"], sort=False):
        pieces = list(group["PIECE"])
        assert pieces == list(range(2, len(pieces) + 2)), (row, name, pieces)
        index = int(row) - 1
        frame.at[index, name] = frame.at[index, name] + "".join(group["TEXT"])
    return frame, meta, len(rest)
