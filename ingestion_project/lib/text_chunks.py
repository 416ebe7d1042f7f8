"""Split text documents into chunks on paragraph boundaries, streamed line by line.

Offsets are into the text with newlines normalized (CRLF and CR become LF), so they mean the same everywhere.
Only the chunk being built is held in memory, however long the document.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa

CHUNK_CHARS = 2_000
CHUNK_SCHEMA = pa.schema(
    [("chunk_index", pa.int64()), ("text", pa.string()), ("char_start", pa.int64()), ("char_end", pa.int64())]
)
_TRIM_CHARS = 64 * 1024

Chunk = tuple[int, int, str]


class _Chunker:
    """Pack consecutive paragraphs (runs of non-blank lines) into chunks of at most ``max_chars`` characters,
    the blank lines between them kept. A paragraph longer than ``max_chars`` is split hard every ``max_chars``
    characters; a piece that is only whitespace is dropped."""

    def __init__(self, max_chars: int):
        self.max = max_chars
        self.text = ""  # the text from offset `base` on: everything a chunk not yet emitted may need
        self.base = 0
        self.position = 0
        self.current: tuple[int, int] | None = None
        self.paragraph: tuple[int, int] | None = None

    def slice(self, start: int, end: int) -> str:
        return self.text[start - self.base : end - self.base]

    def feed(self, line: str) -> Iterator[Chunk]:
        content = line.rstrip("\n")
        start, end = self.position, self.position + len(content)
        self.text += line
        self.position += len(line)
        if content.strip():
            self.paragraph = (self.paragraph[0] if self.paragraph else start, end)
            yield from self._settle(end)
        elif self.paragraph is not None:
            yield from self._close_paragraph()
        if self.paragraph is None and self.current is not None and self.position - self.current[0] >= self.max:
            # A later paragraph ends at least one character past here, too far to join the current chunk.
            yield self._emit(*self.current)
            self.current = None
        self._trim()

    def _settle(self, end: int) -> Iterator[Chunk]:
        # What the paragraph's final end would decide, decided as soon as its end so far decides it.
        if self.current is not None and end - self.current[0] > self.max:
            yield self._emit(*self.current)
            self.current = None
        if self.current is None:
            start = self.paragraph[0]
            while end - start > self.max:
                if self.slice(start, start + self.max).strip():
                    yield self._emit(start, start + self.max)
                start += self.max
            self.paragraph = (start, end)

    def _close_paragraph(self) -> Iterator[Chunk]:
        start, end = self.paragraph
        self.paragraph = None
        if self.current is not None and end - self.current[0] <= self.max:
            self.current = (self.current[0], end)
            return
        if self.current is not None:
            yield self._emit(*self.current)
        while end - start > self.max:
            if self.slice(start, start + self.max).strip():
                yield self._emit(start, start + self.max)
            start += self.max
        self.current = (start, end) if self.slice(start, end).strip() else None

    def finish(self) -> Iterator[Chunk]:
        if self.paragraph is not None:
            yield from self._close_paragraph()
        if self.current is not None:
            yield self._emit(*self.current)
            self.current = None

    def _emit(self, start: int, end: int) -> Chunk:
        return start, end, self.slice(start, end)

    def _trim(self) -> None:
        keep = min(
            self.current[0] if self.current else self.position,
            self.paragraph[0] if self.paragraph else self.position,
        )
        if keep - self.base > _TRIM_CHARS:
            self.text = self.text[keep - self.base :]
            self.base = keep


def iter_chunks(lines: Iterable[str], *, max_chars: int = CHUNK_CHARS) -> Iterator[Chunk]:
    """(char_start, char_end, text) of each chunk of the text whose lines (newline-normalized) are ``lines``."""
    chunker = _Chunker(max_chars)
    for line in lines:
        yield from chunker.feed(line)
    yield from chunker.finish()


def chunk_batches(lines: Iterable[str], *, batch_rows: int = 1024) -> Iterator[pa.RecordBatch]:
    """The chunks as record batches of chunk_index, text, char_start, char_end."""
    columns: dict[str, list] = {name: [] for name in CHUNK_SCHEMA.names}
    for index, (start, end, text) in enumerate(iter_chunks(lines)):
        for name, value in zip(CHUNK_SCHEMA.names, (index, text, start, end), strict=True):
            columns[name].append(value)
        if len(columns["text"]) == batch_rows:
            yield pa.RecordBatch.from_pydict(columns, schema=CHUNK_SCHEMA)
            columns = {name: [] for name in CHUNK_SCHEMA.names}
    if columns["text"]:
        yield pa.RecordBatch.from_pydict(columns, schema=CHUNK_SCHEMA)
