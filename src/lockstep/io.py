"""Writing outputs whole or not at all, in the plain formats DVC reads (JSON metrics, CSV plots)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write a file whole or not at all, so an interrupted stage never leaves half an output."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a writer that was killed
        if not _alive(stale.suffixes[-2].lstrip(".")):
            stale.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    os.replace(tmp, path)


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # another user's process
        return True
    return True


def write_json(path: Path, data: Any) -> None:
    """Metrics and records as indented JSON, the way `dvc metrics` and reviewers read them."""
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def write_csv(path: Path, table: pd.DataFrame | list[dict[str, Any]]) -> None:
    """A plain CSV for DVC's plot templates, from a table's columns or from rows (header from the first).

    Arrow's C++ writer formats a million rows in a fraction of a second. A text value holding a
    comma, quote or line break is quoted; otherwise values are written as they are."""
    import pyarrow as pa
    import pyarrow.csv

    columns = (
        pa.Table.from_pylist(table) if isinstance(table, list) else pa.Table.from_pandas(table, preserve_index=False)
    )
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow(columns.column_names)
    body = pa.BufferOutputStream()
    try:
        pyarrow.csv.write_csv(columns, body, pyarrow.csv.WriteOptions(include_header=False, quoting_style="none"))
    except pa.ArrowInvalid:  # a value needs quotes: quote the text values
        body = pa.BufferOutputStream()
        pyarrow.csv.write_csv(columns, body, pyarrow.csv.WriteOptions(include_header=False))
    write_atomic(path, header.getvalue().encode("utf-8") + body.getvalue().to_pybytes())


def file_md5(path: Path) -> str:
    """MD5 of a file's bytes: the same hash DVC records for it in dvc.lock."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_md5(path: Path) -> str:
    """The hash DVC records for data: a file's MD5, or for a directory DVC's `<md5>.dir` of its files."""
    if not path.is_dir():
        return file_md5(path)
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.tree import Tree

    tree = Tree()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        tree.add(file.relative_to(path).parts, None, HashInfo("md5", file_md5(file)))
    tree.digest()
    return tree.hash_info.value
