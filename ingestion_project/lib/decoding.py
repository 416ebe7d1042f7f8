"""Byte-level decoding shared by format detection and parsing: gzip, byte-order marks and strict UTF-8."""

from __future__ import annotations

import codecs
import zlib

from ingestion_project.lib.errors import UnsupportedFormatError, ValidationError

GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_INPUT_CHUNK = 64 * 1024
_UTF16_BOMS = ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))


def is_gzip(data: bytes) -> bool:
    """Whether the bytes start with the gzip magic number."""
    return data.startswith(GZIP_MAGIC)


def gunzip(data: bytes, *, max_bytes: int) -> bytes:
    """Decompress gzip data (every member, as `cat a.gz b.gz` produces), never holding more than max_bytes.

    Raises ValidationError as soon as the output would exceed max_bytes, so a small "gzip bomb" cannot exhaust
    memory, and for corrupt or truncated streams.
    """
    out = bytearray()
    decompressor = zlib.decompressobj(_GZIP_WBITS)
    position = 0
    pending = b""
    try:
        while True:
            if not pending:
                if position >= len(data):
                    break
                pending = data[position : position + _INPUT_CHUNK]
                position += _INPUT_CHUNK
            # max_length bounds each step's output, so a bomb is stopped one byte past the limit.
            out += decompressor.decompress(pending, max_bytes - len(out) + 1)
            if len(out) > max_bytes:
                raise ValidationError(
                    f"gzip content decompresses to more than the limit of {max_bytes:,} bytes "
                    "(possible gzip bomb); refusing to continue"
                )
            pending = decompressor.unconsumed_tail
            if decompressor.eof:
                rest = decompressor.unused_data + data[position:]
                if not rest.strip(b"\x00"):
                    return bytes(out)
                if not is_gzip(rest):
                    raise ValidationError(f"{len(rest):,} bytes of trailing data after the gzip stream")
                decompressor, data, position, pending = zlib.decompressobj(_GZIP_WBITS), rest, 0, b""
    except zlib.error as e:
        raise ValidationError(f"corrupt gzip stream after {len(out):,} decompressed bytes: {e}") from e
    raise ValidationError(f"truncated gzip stream: it ends after {len(out):,} decompressed bytes")


def transcode_utf16(data: bytes, *, strict: bool = True) -> bytes:
    """Return UTF-16 text that starts with a byte-order mark as UTF-8 without the mark; other bytes unchanged.

    With strict=False undecodable bytes become U+FFFD instead of raising, for sniffing the head of a document
    that may be cut in the middle of a character.
    """
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise UnsupportedFormatError("UTF-32 text is not supported; re-encode the document as UTF-8")
    for bom, codec in _UTF16_BOMS:
        if data.startswith(bom):
            body = data[len(bom) :]
            if not strict:
                return body[: len(body) // 2 * 2].decode(codec, errors="replace").encode("utf-8")
            try:
                return body.decode(codec).encode("utf-8")
            except UnicodeDecodeError as e:
                raise ValidationError(
                    f"not valid {codec.upper()} text at byte offset {e.start + len(bom)}: {e.reason}"
                ) from e
    return data


def decode_utf8(data: bytes) -> str:
    """Decode strict UTF-8, dropping a leading byte-order mark; errors name the byte offset and line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ValidationError(
            f"not valid UTF-8 at byte offset {e.start} (line {line}): byte 0x{data[e.start]:02x}, "
            f"{e.reason}; re-encode the document as UTF-8"
        ) from e
    return text.removeprefix("\ufeff")
