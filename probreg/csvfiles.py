"""Reading and writing CSV files with Python's ``csv`` module, with one-line errors.

Errors name the file and, where it applies, the line (counting the header as line 1) and the
column, so a user can open the file and fix it.
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
from collections.abc import Sequence

import numpy as np

from probreg import files
from probreg.errors import UsageError, shorten
from probreg.params import float_text

#: How errors name standard input (``-``).
STDIN = "<stdin>"


def source_name(path: str | os.PathLike, streams: bool = True) -> str:
    """How errors name ``path``: :data:`STDIN` for ``-`` read as a stream."""
    return STDIN if streams and str(path) == "-" else str(path)


def _rows(handle) -> list[list[str]]:
    return [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]


def read_header_and_rows(
    path: str | os.PathLike, streams: bool = False
) -> tuple[list[str], list[list[str]]]:
    """The header and the data rows of a comma-separated file, checked for shape.

    With ``streams``, ``-`` (standard input, named ``<stdin>`` in errors), a FIFO or a device
    is read too; they can be read only once, so only a caller that reads the file once may
    allow them."""
    stdin = streams and str(path) == "-"
    if not (stdin or (streams and files.kind_of(path) in files.STREAMS)):
        path = files.check_input_file(path, "CSV file")
    path = source_name(path, streams)
    try:
        if stdin:  # read through a wrapper that is detached, so sys.stdin stays open
            raw = getattr(sys.stdin, "buffer", None)
            if raw is None:
                raise UsageError("standard input cannot be read here; give a file path")
            handle = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            try:
                table = _rows(handle)
            finally:
                handle.detach()
        else:
            with open(path, newline="", encoding="utf-8-sig") as handle:
                table = _rows(handle)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise UsageError(f"cannot read CSV file '{path}': {error}") from None
    if not table:
        raise UsageError(f"CSV file '{path}' is empty")
    header = [name.strip() for name in table[0]]
    if len(table) == 1:
        raise UsageError(f"CSV file '{path}' has a header but no data rows")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise UsageError(
            f"CSV file '{path}' repeats column '{shorten(duplicates[0], 60)}' in its header"
        )
    for line, row in enumerate(table[1:], start=2):
        if len(row) != len(header):
            raise UsageError(
                f"CSV file '{path}' line {line} has {len(row)} fields but the header has "
                f"{len(header)}"
            )
    return header, table[1:]


def read_columns(
    path: str | os.PathLike, columns: Sequence[str], streams: bool = False
) -> np.ndarray:
    """The named columns as a ``(rows, len(columns))`` float array; every value finite.
    ``streams`` as in :func:`read_header_and_rows`."""
    header, rows = read_header_and_rows(path, streams)
    path = source_name(path, streams)
    missing = [name for name in columns if name not in header]
    if missing:
        raise UsageError(
            f"CSV file '{path}' has no column '{shorten(missing[0], 60)}'; its columns are: "
            f"{shorten(', '.join(header), 300)}"
        )
    index = [header.index(name) for name in columns]
    values = np.empty((len(rows), len(columns)), np.float64)
    for line, row in enumerate(rows, start=2):
        for j, (name, i) in enumerate(zip(columns, index, strict=True)):
            text = row[i].strip()
            try:
                if "_" in text or not text.isascii():  # float() takes 1_000 and other digits
                    raise ValueError(text)
                value = float(text)
            except ValueError:
                raise UsageError(
                    f"CSV file '{path}' line {line}, column '{shorten(name, 60)}': "
                    f"'{shorten(text, 60)}' is not a number"
                ) from None
            if not math.isfinite(value):
                raise UsageError(
                    f"CSV file '{path}' line {line}, column '{shorten(name, 60)}': "
                    f"'{shorten(text, 60)}' is not a finite number (NaN and infinity are not "
                    "allowed)"
                )
            values[line - 2, j] = value
    return values


#: The shortest text that reads back as the same float (the name CSV writing used before).
number_text = float_text


def format_table(header: Sequence[str], columns: np.ndarray) -> str:
    """``columns`` (rows, len(header)) as CSV text with a header line."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in np.asarray(columns, np.float64):  # row by row: no whole table of Python floats
        writer.writerow(map(number_text, row.tolist()))
    return buffer.getvalue()


def write_table(path: str | os.PathLike, header: Sequence[str], columns: np.ndarray) -> None:
    """Write ``columns`` with a header: ``-`` is stdout, a FIFO or device is written in place,
    a regular file is replaced atomically."""
    files.write_output(files.check_output(path, force=True), format_table(header, columns))
