"""Column-name rules every tabular format shares, and the Parquet reader.

Every failure is a ValidationError saying what is wrong and where; pyarrow's own errors are kept as the cause.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from ingestion_project.lib.bronze import RESERVED_COLUMNS
from ingestion_project.lib.errors import ValidationError
from ingestion_project.lib.limits import DocumentLimits, check_expansion, over_limit

# Small batches: a row may decode to far more than the file suggests (one long value, repeated by a dictionary).
PARQUET_BATCH_ROWS = 1024


def check_columns(names: Sequence[str], label: str, *, refuse_reserved: bool = True) -> None:
    """Reject empty and duplicate column names, and reserved ones (lineage, rescue, staging's file column) unless
    ``refuse_reserved`` is off: documents land those renamed (``bronze.landing_names``).

    Names are compared ignoring case because dbt reads bronze with DuckDB, whose identifiers ignore case.
    """
    reserved = {name.casefold() for name in RESERVED_COLUMNS} if refuse_reserved else set()
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        folded = name.casefold()
        if not name.strip():
            raise ValidationError(f"{label}: column {position} has an empty name")
        if folded in reserved:
            raise ValidationError(
                f"{label}: column {position} is named {name!r}, which is reserved for the lineage columns "
                f"({', '.join(RESERVED_COLUMNS)})"
            )
        if folded in seen:
            raise ValidationError(
                f"{label}: column {position} ({name!r}) duplicates the name of column {seen[folded]} "
                "(names must be unique, ignoring case)"
            )
        seen[folded] = position


def read_parquet(source: BinaryIO, size: int, writer, limits: DocumentLimits) -> None:
    """Stream a Parquet file into ``writer`` a batch at a time.

    Before any data is decoded, the footer's row and column counts and the uncompressed size of every column
    chunk are held to the limits (catching compression bombs); while decoding, the decoded bytes are counted
    against ``limits.decompressed_size`` (catching dictionary and run-length bombs, which are small even
    uncompressed). A truncated or corrupt file, or one without rows, is a ValidationError.
    """
    try:
        parquet = pq.ParquetFile(source)
        _check_footer(parquet.metadata, limits)
        check_columns(parquet.schema_arrow.names, "Parquet", refuse_reserved=False)
        decoded = 0
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, use_threads=False):
            decoded += batch.nbytes
            if decoded > limits.decompressed_bytes:
                raise over_limit(
                    "decompressed_size",
                    f"the Parquet data decodes to more than {limits.decompressed_bytes:,} bytes",
                    limits.decompressed_bytes,
                    " bytes",
                )
            check_expansion(decoded, size, limits, "the Parquet data")
            writer.write(batch)
    except pa.ArrowMemoryError:
        raise
    except (pa.ArrowException, OSError) as e:
        raise ValidationError(f"not a valid Parquet file ({size:,} bytes; truncated or corrupt?): {e}") from e
    if writer.close() == 0:
        raise ValidationError("Parquet file has no rows")


def _check_footer(metadata: pq.FileMetaData, limits: DocumentLimits) -> None:
    if metadata.num_columns > limits.columns:
        raise over_limit("columns", f"the Parquet file has {metadata.num_columns:,} columns", limits.columns)
    if metadata.num_rows > limits.rows:
        raise over_limit("rows", f"the Parquet file has {metadata.num_rows:,} rows", limits.rows)
    uncompressed = sum(
        metadata.row_group(g).column(c).total_uncompressed_size
        for g in range(metadata.num_row_groups)
        for c in range(metadata.num_columns)
    )
    if uncompressed > limits.decompressed_bytes:
        raise over_limit(
            "decompressed_size",
            f"the Parquet data is {uncompressed:,} bytes uncompressed",
            limits.decompressed_bytes,
            " bytes",
        )
