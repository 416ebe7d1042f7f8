"""Split text documents into chunks on paragraph boundaries, keeping offsets into the normalized text."""

from __future__ import annotations

import pyarrow as pa

CHUNK_CHARS = 2_000
CHUNK_SCHEMA = pa.schema(
    [("chunk_index", pa.int64()), ("text", pa.string()), ("char_start", pa.int64()), ("char_end", pa.int64())]
)


def normalize_newlines(text: str) -> str:
    """Turn Windows (CRLF) and classic Mac (CR) line ends into LF, so offsets mean the same everywhere."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def paragraph_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each paragraph: a run of lines with non-whitespace content, ended by a blank line."""
    spans: list[tuple[int, int]] = []
    start: int | None = None
    last_end = position = 0
    for line in text.split("\n"):
        end = position + len(line)
        if line.strip():
            if start is None:
                start = position
            last_end = end
        elif start is not None:
            spans.append((start, last_end))
            start = None
        position = end + 1
    if start is not None:
        spans.append((start, last_end))
    return spans


def chunk_spans(text: str, *, max_chars: int = CHUNK_CHARS) -> list[tuple[int, int]]:
    """Pack consecutive paragraphs into chunks of at most max_chars characters, blank lines between them kept.

    A paragraph longer than max_chars (a single huge line, say) is split hard every max_chars characters; a
    piece that is only whitespace is dropped.
    """
    chunks: list[tuple[int, int]] = []
    current: tuple[int, int] | None = None
    for start, end in paragraph_spans(text):
        if current is not None and end - current[0] <= max_chars:
            current = (current[0], end)
            continue
        if current is not None:
            chunks.append(current)
        while end - start > max_chars:
            if text[start : start + max_chars].strip():
                chunks.append((start, start + max_chars))
            start += max_chars
        current = (start, end) if text[start:end].strip() else None
    if current is not None:
        chunks.append(current)
    return chunks


def chunk_table(text: str, *, max_chars: int = CHUNK_CHARS) -> pa.Table:
    """The chunks of already-normalized text as a table of chunk_index, text, char_start, char_end."""
    spans = chunk_spans(text, max_chars=max_chars)
    return pa.table(
        {
            "chunk_index": range(len(spans)),
            "text": [text[start:end] for start, end in spans],
            "char_start": [start for start, _ in spans],
            "char_end": [end for _, end in spans],
        },
        schema=CHUNK_SCHEMA,
    )
