"""A single-file, pickle-free container whose arrays open memory-mapped.

Layout::

    b"TMMAPPED"  (8 bytes)   magic
    uint64 little-endian     length H of the JSON header
    H bytes                  UTF-8 JSON: {"format", "format_version", "kind", "meta",
                             "arrays": {name: {"dtype", "shape", "offset"}}}
    ...                      each array's raw C-order bytes at its offset (64-aligned)

Opening reads the header only and maps the file: arrays are read-only views of the
mapping, so a bundle of any size opens in milliseconds and pages in on first touch.
Only plain numeric, bool and fixed-width unicode dtypes are accepted in either
direction; offsets and sizes are checked against the file, so a corrupt or foreign file
gives a ``ValueError`` naming the path, never a crash or code execution.
"""

from __future__ import annotations

import json
import os
import struct

import numpy as np

from .io import _json_default

__all__ = ["MAGIC", "save_mapped", "load_mapped", "is_mapped", "mapped_kind"]

MAGIC = b"TMMAPPED"
FORMAT_NAME = "tastemaker-mapped"
FORMAT_VERSION = 1
_ALIGN = 64
_KINDS = "biufU"


def is_mapped(path) -> bool:
    """Whether ``path`` is a file starting with this container's magic."""
    try:
        with open(os.fspath(path), "rb") as fh:
            return fh.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def save_mapped(path, kind: str, meta: dict, arrays: dict) -> None:
    """Write ``arrays`` (name -> ndarray) and JSON-able ``meta`` to ``path`` atomically
    (:func:`tastemaker.io.write_atomic`)."""
    path = os.fspath(path)
    table = {}
    prepared = {}
    offset = 0
    for name, arr in arrays.items():
        a = np.ascontiguousarray(arr)
        if a.dtype.kind not in _KINDS or a.dtype.fields is not None:
            raise ValueError(f"arrays[{name!r}]: dtype {a.dtype} cannot be saved (plain "
                             "numbers, bools and fixed-width strings only)")
        offset = (offset + _ALIGN - 1) // _ALIGN * _ALIGN
        table[name] = {"dtype": a.dtype.str, "shape": list(a.shape), "offset": offset}
        prepared[name] = a
        offset += a.nbytes
    header = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "kind": kind,
              "meta": meta, "arrays": table}
    blob = json.dumps(header, default=_json_default).encode("utf-8")
    start = (len(MAGIC) + 8 + len(blob) + _ALIGN - 1) // _ALIGN * _ALIGN
    from .io import write_atomic

    def write(fh):
        fh.write(MAGIC)
        fh.write(struct.pack("<Q", len(blob)))
        fh.write(blob)
        fh.write(b"\0" * (start - fh.tell()))
        for name, a in prepared.items():
            pos = start + table[name]["offset"]
            fh.write(b"\0" * (pos - fh.tell()))
            if a.nbytes:
                fh.write(a.reshape(-1).view(np.uint8).data)

    write_atomic(path, write)


def load_mapped(path, kind: str | None = None) -> tuple[dict, dict]:
    """Open a file written by :func:`save_mapped` -> ``(meta, arrays)``, arrays read-only
    memory-mapped views (empty arrays are ordinary empty arrays)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"path: no such file {path!r}")

    def bad(why: str):
        return ValueError(f"path: {path!r} is not a readable tastemaker bundle ({why})")

    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        if fh.read(len(MAGIC)) != MAGIC:
            raise bad("wrong magic bytes")
        raw = fh.read(8)
        if len(raw) != 8:
            raise bad("truncated header")
        (hlen,) = struct.unpack("<Q", raw)
        if hlen > size - len(MAGIC) - 8:
            raise bad("header longer than the file")
        try:
            header = json.loads(fh.read(hlen).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise bad(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise bad("not a tastemaker bundle")
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(f"path: {path!r} has bundle format version {version!r}; this "
                         f"tastemaker reads up to {FORMAT_VERSION} (upgrade tastemaker)")
    if kind is not None and header.get("kind") != kind:
        raise ValueError(f"path: {path!r} holds {header.get('kind')!r}, expected {kind!r}")
    start = (len(MAGIC) + 8 + hlen + _ALIGN - 1) // _ALIGN * _ALIGN
    table = header.get("arrays")
    if not isinstance(table, dict):
        raise bad("no array table")
    mm = np.memmap(path, dtype=np.uint8, mode="r") if size > start else None
    arrays = {}
    for name, spec in table.items():
        try:
            dtype = np.dtype(spec["dtype"])
            shape = tuple(int(s) for s in spec["shape"])
            offset = int(spec["offset"])
        except (KeyError, TypeError, ValueError) as exc:
            raise bad(f"array {name!r}: bad description ({exc})") from None
        if dtype.kind not in _KINDS or dtype.fields is not None or any(s < 0 for s in shape):
            raise bad(f"array {name!r}: unsupported dtype {dtype} or shape {shape}")
        count = int(np.prod(shape, dtype=np.int64))
        nbytes = count * dtype.itemsize
        if offset < 0 or start + offset + nbytes > size:
            raise bad(f"array {name!r} lies outside the file")
        if count == 0 or mm is None:
            arrays[name] = np.zeros(shape, dtype=dtype)
            continue
        arr = np.ndarray(shape, dtype=dtype, buffer=mm, offset=start + offset)
        arrays[name] = arr
    return header.get("meta", {}), arrays


def mapped_kind(path) -> str | None:
    """The ``kind`` recorded in a mapped file's header (None if it has none)."""
    path = os.fspath(path)
    with open(path, "rb") as fh:
        if fh.read(len(MAGIC)) != MAGIC:
            raise ValueError(f"path: {path!r} is not a tastemaker bundle")
        raw = fh.read(8)
        if len(raw) != 8:
            raise ValueError(f"path: {path!r} is not a readable tastemaker bundle (truncated)")
        (hlen,) = struct.unpack("<Q", raw)
        if hlen > os.path.getsize(path):
            raise ValueError(f"path: {path!r} is not a readable tastemaker bundle (bad header)")
        try:
            header = json.loads(fh.read(hlen).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ValueError(f"path: {path!r} is not a readable tastemaker bundle "
                             "(header is not JSON)") from None
    return header.get("kind") if isinstance(header, dict) else None
