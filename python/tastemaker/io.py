"""Persistence: a versioned, self-describing file format with no pickle.

Every saved object (models, Interactions) is one ``.npz`` archive holding plain numeric
or fixed-width string arrays plus ``__header__``: UTF-8 JSON with the format name,
format version, object kind, constructor parameters and any small metadata.  Loading
uses ``allow_pickle=False``, so a corrupted or foreign file cannot execute code; it
fails with a ``ValueError`` naming the path and the problem.
"""

from __future__ import annotations

import io as _pyio
import json
import os
import stat
import tempfile
import zipfile
from typing import Any, Callable

import numpy as np

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "save_archive", "load_archive", "register_model",
           "save_model", "register_bundle", "load", "write_atomic", "check_output_path"]

FORMAT_NAME = "tastemaker"
FORMAT_VERSION = 1
_HEADER = "__header__"
_MAX_HEADER_BYTES = 16 << 20  # the JSON header: parameters and small metadata only
_MAX_JSON_DEPTH = 64

_MODEL_REGISTRY: dict[str, type] = {}


def _json_default(obj):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def _is_file_object(target) -> bool:
    return hasattr(target, "write") or hasattr(target, "read")


def _describe(source) -> str:
    if _is_file_object(source):
        return repr(getattr(source, "name", f"<{type(source).__name__}>"))
    return repr(os.fspath(source))


def _resolve_output(path: str) -> str:
    """The regular file ``path`` names (through symlinks); ValueError for anything else.

    A symlink is followed, so saving to a link updates the file it points to; a device,
    FIFO, socket or directory is refused (replacing ``/dev/null`` by a regular file, or
    writing a model into ``/dev/full``, is never what the user meant).
    """
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise ValueError(f"path: cannot write {path!r} ({exc.strerror})") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise ValueError(f"path: {path!r} is {kind}; give a file path to save to")
    directory = os.path.dirname(real) or "."
    if not os.path.isdir(directory):
        raise ValueError(f"path: directory {directory!r} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ValueError(f"path: directory {directory!r} is not writable")
    return real


def check_output_path(path) -> str:
    """Check that ``path`` can be saved to, before any expensive work; returns the regular
    file it names (see :func:`save_archive`)."""
    if _is_file_object(path):
        return path
    try:
        path = os.fspath(path)
    except TypeError:
        raise ValueError(f"path: expected a file path or a binary file object, got "
                         f"{type(path).__name__}") from None
    return _resolve_output(path)


def _write_npz(fh, arrays: dict) -> None:
    np.savez(fh, **arrays)


def save_archive(path, kind: str, header: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` and a JSON ``header`` to ``path`` (an ``.npz`` file) or to a binary
    file object.

    ``kind`` names the object type (``"model:ALS"``, ``"interactions"``).  Arrays must not
    be of object dtype.  A path is written safely: to a fresh temporary file in the same
    directory (``tempfile.mkstemp``: never a fixed name an attacker could pre-create as a
    symlink), flushed and fsync'ed, then renamed over the target with ``os.replace``, so
    readers and concurrent writers only ever see a complete file; on any error the
    temporary file is removed and the target is untouched.  A symlink target is followed;
    a directory, device or FIFO is refused.
    """
    payload = {}
    for name, arr in arrays.items():
        if name == _HEADER:
            raise ValueError(f"arrays: the name {_HEADER!r} is reserved")
        a = np.asarray(arr)
        if a.dtype == object:
            raise ValueError(f"arrays[{name!r}]: object arrays cannot be saved without pickle")
        payload[name] = a
    meta = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "kind": kind}
    meta.update(header)
    try:
        text = json.dumps(meta, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"header: cannot be saved as JSON ({exc})") from None
    blob = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    payload = {_HEADER: blob, **payload}
    if _is_file_object(path):
        if not hasattr(path, "write"):
            raise ValueError("path: the file object is not writable")
        _write_npz(path, payload)
        return
    write_atomic(path, lambda fh: _write_npz(fh, payload))


def write_atomic(path, write: Callable[[Any], None]) -> None:
    """Write a file safely: ``write(fh)`` fills a fresh temporary file in the target's
    directory (``tempfile.mkstemp``: a unique name, never a pre-existing symlink), which is
    flushed, fsync'ed and renamed over the target with ``os.replace``; on any error the
    temporary file is removed and the target is untouched.  Readers and concurrent
    writers only ever see a complete file.  The target is checked first
    (:func:`check_output_path`): a symlink is followed, a directory/device/FIFO refused.
    """
    real = check_output_path(path)
    directory, base = os.path.split(real)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if os.path.exists(real):  # keep the permissions of the file being replaced
            os.chmod(tmp, stat.S_IMODE(os.stat(real).st_mode))
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, real)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _json_depth_ok(obj, depth: int = 0) -> bool:
    if depth > _MAX_JSON_DEPTH:
        return False
    if isinstance(obj, dict):
        return all(_json_depth_ok(v, depth + 1) for v in obj.values())
    if isinstance(obj, list):
        return all(_json_depth_ok(v, depth + 1) for v in obj)
    return True


class _Damaged(Exception):
    """Internal: why a file is not a readable tastemaker file (our words, never numpy's)."""


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, archive_size: int) -> np.ndarray:
    """One ``.npy`` member, its declared size checked against the file before allocating."""
    name = info.filename
    if info.compress_type != zipfile.ZIP_STORED:
        raise _Damaged(f"member {name!r} is compressed")  # savez never compresses
    if info.file_size > archive_size or info.compress_size > archive_size:
        raise _Damaged(f"member {name!r} declares {info.file_size} bytes in a "
                       f"{archive_size}-byte file")
    with zf.open(info) as fh:
        try:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise _Damaged(f"member {name!r} has an unknown array version")
        except _Damaged:
            raise
        except Exception:
            raise _Damaged(f"member {name!r} is not an array") from None
        if dtype.hasobject or dtype.kind not in "biufUS" or dtype.fields is not None:
            raise _Damaged(f"member {name!r} has dtype {dtype.str}, which tastemaker never "
                           f"writes")
        if any(not isinstance(d, int) or d < 0 for d in shape):
            raise _Damaged(f"member {name!r} has a bad shape")
        count = 1
        for d in shape:
            count *= d
        nbytes = count * dtype.itemsize
        if nbytes != info.file_size - fh.tell():
            raise _Damaged(f"member {name!r} declares {nbytes} bytes of data but holds "
                           f"{info.file_size - fh.tell()}")
        data = fh.read(nbytes)
        if len(data) != nbytes:
            raise _Damaged(f"member {name!r} is truncated")
    order = "F" if fortran else "C"
    return np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order=order).copy(order="C")


def _read_archive(fh, archive_size: int) -> tuple[dict, dict]:
    try:
        zf = zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError):
        raise _Damaged("not a zip archive") from None
    with zf:
        arrays = {}
        header_bytes = None
        infos = zf.infolist()
        if sum(i.file_size for i in infos) > archive_size:  # members may not overlap
            raise _Damaged("its members declare more bytes than the file holds")
        for info in infos:
            if not info.filename.endswith(".npy"):
                raise _Damaged(f"unexpected member {info.filename!r}")
            key = info.filename[:-4]
            if key == _HEADER:
                if info.file_size > _MAX_HEADER_BYTES + 1024:
                    raise _Damaged("header too large")
                arr = _read_member(zf, info, archive_size)
                if arr.dtype != np.uint8 or arr.ndim != 1:
                    raise _Damaged("header has the wrong type")
                header_bytes = arr.tobytes()
            else:
                arrays[key] = _read_member(zf, info, archive_size)
    if header_bytes is None:
        raise _Damaged("no header")
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _Damaged("the header is not valid JSON") from None
    if not isinstance(header, dict) or not _json_depth_ok(header):
        raise _Damaged("the header is not a JSON object of the expected form")
    return header, arrays


def load_archive(path, kind: str | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """Read a file written by :func:`save_archive` (a path or a binary file object);
    returns ``(header, arrays)``.

    Raises ``ValueError`` naming the file for a missing, corrupt, truncated, foreign or
    newer-version file, or one of another ``kind`` (when given; a trailing ``*`` matches a
    prefix).  Nothing is unpickled, and every array's declared size is checked against the
    file's size before anything is allocated.
    """
    where = _describe(path)
    if _is_file_object(path):
        if not hasattr(path, "read"):
            raise ValueError("path: the file object is not readable")
        try:
            raw = path.read()
        except (OSError, ValueError) as exc:
            raise ValueError(f"path: cannot read {where} ({exc})") from None
        if not isinstance(raw, (bytes, bytearray, memoryview)):
            raise ValueError(f"path: {where} is not a binary file object (open it with 'rb')")
        raw = bytes(raw)
        opened = _pyio.BytesIO(raw)
        size = len(raw)
    else:
        try:
            p = os.fspath(path)
        except TypeError:
            raise ValueError(f"path: expected a file path or a binary file object, got "
                             f"{type(path).__name__}") from None
        if not os.path.isfile(p):
            raise ValueError(f"path: no such file {p!r}")
        try:
            opened = open(p, "rb")
            size = os.fstat(opened.fileno()).st_size
        except OSError as exc:
            raise ValueError(f"path: cannot read {p!r} ({exc.strerror})") from None
    try:
        with opened:
            header, arrays = _read_archive(opened, size)
    except _Damaged as exc:
        raise ValueError(f"path: {where} is not a readable tastemaker file ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile, RuntimeError, NotImplementedError,
            OverflowError, ValueError, KeyError):
        raise ValueError(f"path: {where} is not a readable tastemaker file (damaged)") from None
    if header.get("format") != FORMAT_NAME:
        raise ValueError(f"path: {where} is not a tastemaker file")
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"path: {where} has an invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"path: {where} has format version {version!r}; this tastemaker reads up to "
            f"{FORMAT_VERSION} (upgrade tastemaker)"
        )
    got = header.get("kind", "")
    if not isinstance(got, str):
        raise ValueError(f"path: {where} has an invalid kind {got!r}")
    if kind is not None:
        ok = got.startswith(kind[:-1]) if kind.endswith("*") else got == kind
        if not ok:
            raise ValueError(f"path: {where} holds {got!r}, expected {kind!r}")
    for key in ("params", "extra", "settings"):
        if key in header and not isinstance(header[key], dict):
            raise ValueError(f"path: {where} has a damaged header ({key!r} is not an object)")
    return header, arrays


def register_model(name: str):
    """Class decorator: make ``load()`` able to rebuild this model.

    The class must implement ``_get_state() -> (params, arrays, extra)`` and the
    classmethod ``_from_state(params, arrays, extra)`` (a fitted model); an unfitted one
    is saved as its constructor parameters (``_saved_params()``) and rebuilt with
    ``_from_params(params)`` (both given by :class:`tastemaker.models.Model`).
    """

    def deco(cls):
        _MODEL_REGISTRY[name] = cls
        cls._model_kind = name
        return cls

    return deco


_ID_MAPS = ("user_ids", "item_ids")
_ID_PREFIX = "idmap__"
_UI_PREFIX = "useritems__"


def _id_array(ids, name: str) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"model.{name}: expected a 1-D array of external ids, got shape {arr.shape}")
    if arr.dtype == object:
        kinds = {type(x) for x in arr.tolist()}
        if all(issubclass(k, (int, np.integer)) for k in kinds):
            arr = arr.astype(np.int64)
        else:
            arr = arr.astype(str)
    return arr


def save_model(model, path) -> None:
    """Save any registered model (used by each model's ``save``) to a path or a binary
    file object.

    A fitted model stores ``model._get_state()``; an unfitted one only its constructor
    parameters.  If the model carries external id maps (``model.user_ids`` /
    ``model.item_ids``: index -> external id, set for example by the command line from an
    Interactions), they are stored in the same file and restored by :func:`load`.  So is an
    optional ``model.user_items`` (scipy sparse, users x items: what each user has already
    seen, which ``recommend`` filters out), so that one file serves requests on its own.
    Id maps and ``user_items`` must match the model's numbers of users and items.
    """
    kind = getattr(type(model), "_model_kind", None)
    if kind is None:
        raise ValueError(f"model: {type(model).__name__} is not a registered tastemaker model")
    is_fitted = getattr(model, "_is_fitted", None)
    fitted = True if is_fitted is None else bool(is_fitted())
    if fitted:
        params, arrays, extra = model._get_state()
    else:
        params, arrays, extra = model._saved_params(), {}, {}
    arrays = dict(arrays)
    sizes = _model_sizes(model) if fitted else None
    for name, axis in zip(_ID_MAPS, (0, 1)):
        ids = getattr(model, name, None)
        if ids is not None:
            arr = _id_array(ids, name)
            if sizes is not None and len(arr) != sizes[axis]:
                raise ValueError(
                    f"model.{name}: {len(arr)} external ids for {sizes[axis]} "
                    f"{('users', 'items')[axis]}; extend it (for example after "
                    f"partial_fit_{('users', 'items')[axis]}) before saving")
            arrays[_ID_PREFIX + name] = arr
    ui = getattr(model, "user_items", None)
    if ui is not None:
        import scipy.sparse as sp

        if not sp.issparse(ui):
            raise ValueError(f"model.user_items: expected a scipy sparse matrix, got "
                             f"{type(ui).__name__}")
        ui = sp.csr_matrix(ui)
        if sizes is not None and ui.shape != tuple(sizes):
            raise ValueError(f"model.user_items: shape {ui.shape} does not match the model's "
                             f"{sizes[0]} users x {sizes[1]} items")
        arrays[_UI_PREFIX + "indptr"] = ui.indptr.astype(np.int64)
        arrays[_UI_PREFIX + "indices"] = ui.indices.astype(np.int32)
        arrays[_UI_PREFIX + "data"] = ui.data.astype(np.float32)
        arrays[_UI_PREFIX + "shape"] = np.asarray(ui.shape, dtype=np.int64)
    save_archive(path, "model:" + kind, {"params": params, "extra": extra, "fitted": fitted},
                 arrays)


def _model_sizes(model):
    """(n_users, n_items) of a fitted model, or None when the model does not say."""
    fn = getattr(model, "_n_users_items", None)
    return None if fn is None else fn()


_LOAD_ERRORS = (KeyError, TypeError, IndexError, ValueError, AttributeError, OverflowError,
                RecursionError, NotImplementedError, ZeroDivisionError)


_BUNDLE_LOADERS: dict[str, Callable[[Any], Any]] = {}


def register_bundle(kind: str, loader: Callable[[Any], Any]) -> None:
    """Make :func:`load` open memory-mapped bundles (:mod:`tastemaker._mapped`) of
    ``kind`` with ``loader(path)`` (the Personalizer registers ``"personalizer"``)."""
    _BUNDLE_LOADERS[kind] = loader


def load(path):
    """Load a model saved with ``model.save(path)`` from a path or a binary file object
    (the class is read from the file), or a bundle such as a Personalizer's
    ``save(path)``, ready to serve.  Any damaged, foreign or inconsistent file is a
    ``ValueError`` naming it."""
    from . import _mapped

    if not _is_file_object(path):
        try:
            os.fspath(path)
        except TypeError:
            raise ValueError(f"path: expected a file path or a binary file object, got "
                             f"{type(path).__name__}") from None
    if not _is_file_object(path) and _mapped.is_mapped(path):
        kind = _mapped.mapped_kind(path)
        if kind not in _BUNDLE_LOADERS:
            raise ValueError(f"path: {os.fspath(path)!r} holds an unknown bundle kind {kind!r}")
        return _BUNDLE_LOADERS[kind](path)
    header, arrays = load_archive(path, kind="model:*")
    where = _describe(path)
    name = header["kind"][len("model:"):]
    cls = _MODEL_REGISTRY.get(name)
    if cls is None:
        raise ValueError(f"path: {where} holds unknown model type {name!r}")
    id_maps = {k[len(_ID_PREFIX):]: arrays.pop(k) for k in list(arrays) if k.startswith(_ID_PREFIX)}
    ui = {k[len(_UI_PREFIX):]: arrays.pop(k) for k in list(arrays) if k.startswith(_UI_PREFIX)}
    params = header.get("params", {})
    fitted = header.get("fitted", True)
    if not isinstance(fitted, bool):
        raise ValueError(f"path: {where} has a damaged header ('fitted' is not a bool)")
    try:
        if fitted:
            model = cls._from_state(params, arrays, header.get("extra", {}))
        else:
            model = cls._from_params(params)
        sizes = _model_sizes(model) if fitted else None
    except _LOAD_ERRORS as exc:
        raise ValueError(f"path: {where} is a damaged {name} model ({exc})") from None
    for key, ids in id_maps.items():
        if key not in _ID_MAPS:
            continue
        axis = _ID_MAPS.index(key)
        if ids.ndim != 1 or ids.dtype.kind not in "iuU" or (
                sizes is not None and len(ids) != sizes[axis]):
            raise ValueError(f"path: {where} is a damaged {name} model ({key}: "
                             f"{ids.shape[0] if ids.ndim else 0} ids for "
                             f"{sizes[axis] if sizes else '?'} {('users', 'items')[axis]})")
        setattr(model, key, ids)
    if ui:
        model.user_items = _user_items_from(ui, where, sizes)
    return model


def _user_items_from(parts: dict, where: str, sizes):
    import scipy.sparse as sp

    from ._validation import check_csr

    try:
        shape = parts["shape"]
        if shape.shape != (2,) or shape.dtype.kind not in "iu":
            raise ValueError("bad shape")
        shape = tuple(int(x) for x in shape)
        if sizes is not None and shape != tuple(sizes):
            raise ValueError(f"shape {shape} does not match the model's {tuple(sizes)}")
        indptr = parts["indptr"]
        if indptr.ndim != 1 or len(indptr) != shape[0] + 1:
            raise ValueError("bad indptr")
        m = sp.csr_matrix((shape[0], shape[1]), dtype=np.float32)
        m.indptr, m.indices, m.data = indptr, parts["indices"], parts["data"]
        return check_csr(m, "user_items", allow_empty=True)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise ValueError(f"path: {where} holds a damaged user_items matrix ({exc})") from None
