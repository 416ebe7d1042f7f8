"""Byte-level decoding as streams: gzip within a limit, UTF-16 to UTF-8, and a guard that checks text as it flows.

Every reader here is an ``io.RawIOBase`` over another binary stream, so a document of any size is decoded in
constant memory and each failure names where in the document it happened.
"""

from __future__ import annotations

import codecs
import io
import zlib
from typing import BinaryIO

from ingestion_project.lib.errors import UnsupportedFormatError, ValidationError
from ingestion_project.lib.limits import DocumentLimits, LimitExceeded, check_expansion

GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_INPUT_CHUNK = 256 * 1024
_UTF16_BOMS = ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_UTF32_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)


def is_gzip(data: bytes) -> bool:
    """Whether the bytes start with the gzip magic number."""
    return data.startswith(GZIP_MAGIC)


class _Reader(io.RawIOBase):
    """A raw reader that fills ``readinto`` from ``_produce``, keeping what did not fit for the next call."""

    def __init__(self) -> None:
        self._left = b""

    def readable(self) -> bool:
        return True

    def _produce(self, size: int) -> bytes:
        raise NotImplementedError

    def readinto(self, buffer) -> int:
        data = self._left or self._produce(len(buffer))
        taken = data[: len(buffer)]
        self._left = data[len(taken) :]
        buffer[: len(taken)] = taken
        return len(taken)


class GzipReader(_Reader):
    """Decompress gzip (every member, as `cat a.gz b.gz` produces), never producing more than ``max_bytes``.

    Raises LimitExceeded (``limits.decompressed_size``) as soon as the output would pass the limit, so a small
    "gzip bomb" cannot exhaust memory, and ValidationError for corrupt or truncated streams or trailing data.
    """

    def __init__(self, raw: BinaryIO, limits: DocumentLimits):
        super().__init__()
        self._raw = raw
        self._limits = limits
        self._max = limits.decompressed_bytes
        self._produced = 0
        self._consumed = 0
        self._pending = b""
        self._decompressor = zlib.decompressobj(_GZIP_WBITS)
        self._finished = False

    def _produce(self, size: int) -> bytes:
        while not self._finished:
            if not self._pending:
                self._pending = self._raw.read(_INPUT_CHUNK)
                self._consumed += len(self._pending)
                if not self._pending:
                    raise ValidationError(f"truncated gzip stream: it ends after {self._produced:,} decompressed bytes")
            try:
                # max_length bounds each step's output, so a bomb is stopped one byte past the limit.
                out = self._decompressor.decompress(self._pending, min(size, self._max - self._produced + 1))
            except zlib.error as e:
                raise ValidationError(f"corrupt gzip stream after {self._produced:,} decompressed bytes: {e}") from e
            self._produced += len(out)
            if self._produced > self._max:
                raise LimitExceeded(
                    f"gzip content decompresses to more than the limit of {self._max:,} bytes "
                    "(limits.decompressed_size; possible gzip bomb); refusing to continue",
                    "decompressed_size",
                )
            self._pending = self._decompressor.unconsumed_tail
            # Against the compressed bytes actually used: one input chunk of a bomb holds hundreds of MiB.
            check_expansion(self._produced, self._consumed - len(self._pending), self._limits, "the gzip content")
            if self._decompressor.eof:
                self._next_member(self._decompressor.unused_data + self._pending)
            if out:
                return out
        return b""

    def _next_member(self, rest: bytes) -> None:
        # After a member: the end (padding NULs allowed), another member, or trailing data that is an error.
        while not rest.strip(b"\x00"):
            more = self._raw.read(_INPUT_CHUNK)
            self._consumed += len(more)
            if not more:
                self._finished = True
                return
            rest = rest.lstrip(b"\x00") + more
        if not is_gzip(rest):
            trailing = len(rest) + len(self._raw.read())
            raise ValidationError(f"{trailing:,} bytes of trailing data after the gzip stream")
        self._decompressor, self._pending = zlib.decompressobj(_GZIP_WBITS), rest


class Utf16Reader(_Reader):
    """UTF-16 text (after its byte-order mark) as UTF-8; errors name the byte offset in the original."""

    def __init__(self, raw: BinaryIO, codec: str, offset: int):
        super().__init__()
        self._raw = raw
        self._codec = codec
        self._decoder = codecs.getincrementaldecoder(codec)("strict")
        self._offset = offset

    def _produce(self, size: int) -> bytes:
        while True:
            chunk = self._raw.read(_INPUT_CHUNK)
            pending = len(self._decoder.getstate()[0])
            try:
                text = self._decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as e:
                raise ValidationError(
                    f"not valid {self._codec.upper()} text at byte offset {self._offset - pending + e.start}: "
                    f"{e.reason}"
                ) from e
            self._offset += len(chunk)
            if text or not chunk:
                return text.encode("utf-8")


def decoded(raw: BinaryIO, limits: DocumentLimits) -> BinaryIO:
    """The content of a document as its parsers read it: gzip decompressed within ``limits.decompressed_size`` and
    ``limits.expansion``, UTF-16 with a byte-order mark transcoded to UTF-8, a UTF-8 byte-order mark dropped.
    UTF-32 is refused."""
    stream: BinaryIO = io.BufferedReader(raw, _INPUT_CHUNK)
    if is_gzip(stream.peek(2)[:2]):
        stream = io.BufferedReader(GzipReader(stream, limits), _INPUT_CHUNK)
    head = stream.peek(4)[:4]
    if head.startswith(_UTF32_BOMS):
        raise UnsupportedFormatError("UTF-32 text is not supported; re-encode the document as UTF-8")
    for bom, codec in _UTF16_BOMS:
        if head.startswith(bom):
            stream.read(len(bom))
            return io.BufferedReader(Utf16Reader(stream, codec, len(bom)), _INPUT_CHUNK)
    if head.startswith(codecs.BOM_UTF8):
        stream.read(len(codecs.BOM_UTF8))
    return stream


class TextGuard(_Reader):
    """Pass text through while checking it: no NUL byte, valid UTF-8, no line longer than ``max_line`` bytes.

    ``what`` names the document in errors ("a CSV document"). Checks cost a few C-level scans per block: a block
    that is ASCII skips the UTF-8 decoder, and line length is tracked only across block boundaries (a block is
    never longer than the line limit, so a line inside one block is within it).
    """

    def __init__(self, raw: BinaryIO, *, what: str, max_line: int):
        super().__init__()
        self._raw = raw
        self._what = what
        self._max_line = max_line
        self._block = max(1, min(_INPUT_CHUNK, max_line))
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._offset = 0
        self._lines = 0
        self._run = 0  # bytes since the last newline

    def _produce(self, size: int) -> bytes:
        chunk = self._raw.read(self._block)
        nul = chunk.find(b"\x00")
        if nul >= 0:
            raise UnsupportedFormatError(
                f"binary content (NUL byte at byte offset {self._offset + nul}) in {self._what}"
            )
        if not chunk.isascii() or self._decoder.getstate()[0] or not chunk:
            self._check_utf8(chunk)
        first, last = chunk.find(b"\n"), chunk.rfind(b"\n")
        if (self._run + (len(chunk) if first < 0 else first)) > self._max_line:
            line = self._lines + 1
            raise LimitExceeded(
                f"line {line:,} is longer than the limit of {self._max_line:,} bytes (limits.line_length)",
                "line_length",
            )
        self._run = self._run + len(chunk) if last < 0 else len(chunk) - last - 1
        self._lines += chunk.count(b"\n")
        self._offset += len(chunk)
        return chunk

    def _check_utf8(self, chunk: bytes) -> None:
        pending = len(self._decoder.getstate()[0])
        try:
            self._decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as e:
            data = e.object
            line = self._lines + 1 + data.count(b"\n", pending, e.start)
            raise ValidationError(
                f"not valid UTF-8 at byte offset {self._offset - pending + e.start} (line {line}): "
                f"byte 0x{data[e.start]:02x}, {e.reason}; re-encode the document as UTF-8"
            ) from e


def guarded(raw: BinaryIO, *, what: str, max_line: int) -> BinaryIO:
    """``raw`` behind a TextGuard, buffered."""
    return io.BufferedReader(TextGuard(raw, what=what, max_line=max_line), _INPUT_CHUNK)


def transcode_utf16(head: bytes) -> bytes:
    """The head of a document for sniffing: UTF-16 with a byte-order mark as UTF-8 without the mark (undecodable
    bytes as U+FFFD, since a head may end in the middle of a character); other bytes unchanged."""
    if head.startswith(_UTF32_BOMS):
        raise UnsupportedFormatError("UTF-32 text is not supported; re-encode the document as UTF-8")
    for bom, codec in _UTF16_BOMS:
        if head.startswith(bom):
            body = head[len(bom) :]
            return body[: len(body) // 2 * 2].decode(codec, errors="replace").encode("utf-8")
    return head
