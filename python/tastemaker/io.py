"""Persistence: a versioned, self-describing file format with no pickle.

Every saved object (models, Interactions) is one ``.npz`` archive holding plain numeric
or fixed-width string arrays plus ``__header__``: UTF-8 JSON with the format name,
format version, object kind, constructor parameters and any small metadata.  Loading
uses ``allow_pickle=False``, so a corrupted or foreign file cannot execute code; it
fails with a ``ValueError`` naming the path and the problem.
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any, Callable

import numpy as np

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "save_archive", "load_archive", "register_model",
           "register_bundle", "load"]

FORMAT_NAME = "tastemaker"
FORMAT_VERSION = 1
_HEADER = "__header__"

_MODEL_REGISTRY: dict[str, Callable[[dict, dict], Any]] = {}


def _json_default(obj):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def save_archive(path, kind: str, header: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` and a JSON ``header`` to ``path`` (an ``.npz`` file).

    ``kind`` names the object type (``"model:ALS"``, ``"interactions"``).  Arrays must not
    be of object dtype.  The file is written to a temporary name and renamed, so a
    crash never leaves a half-written model behind.
    """
    path = os.fspath(path)
    for name, arr in arrays.items():
        if name == _HEADER:
            raise ValueError(f"arrays: the name {_HEADER!r} is reserved")
        if np.asarray(arr).dtype == object:
            raise ValueError(f"arrays[{name!r}]: object arrays cannot be saved without pickle")
    meta = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "kind": kind}
    meta.update(header)
    blob = np.frombuffer(json.dumps(meta, default=_json_default).encode("utf-8"), dtype=np.uint8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        np.savez(fh, **{_HEADER: blob}, **{k: np.asarray(v) for k, v in arrays.items()})
    os.replace(tmp, path)


def load_archive(path, kind: str | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """Read a file written by :func:`save_archive`; returns ``(header, arrays)``.

    Raises ``ValueError`` for a missing, corrupt, foreign or newer-version file, or one
    of another ``kind`` (when given; a trailing ``*`` matches a prefix).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"path: no such file {path!r}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if _HEADER not in npz.files:
                raise ValueError(f"path: {path!r} is not a tastemaker file (no header)")
            header = json.loads(bytes(npz[_HEADER]).decode("utf-8"))
            arrays = {k: npz[k] for k in npz.files if k != _HEADER}
    except ValueError as exc:
        if str(exc).startswith("path:"):
            raise
        raise ValueError(f"path: {path!r} is not a readable tastemaker file ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError, KeyError, UnicodeDecodeError) as exc:
        raise ValueError(f"path: {path!r} is not a readable tastemaker file ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ValueError(f"path: {path!r} is not a tastemaker file")
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"path: {path!r} has format version {version!r}; this tastemaker reads up to "
            f"{FORMAT_VERSION} (upgrade tastemaker)"
        )
    if kind is not None:
        got = header.get("kind", "")
        ok = got.startswith(kind[:-1]) if kind.endswith("*") else got == kind
        if not ok:
            raise ValueError(f"path: {path!r} holds {got!r}, expected {kind!r}")
    return header, arrays


def register_model(name: str):
    """Class decorator: make ``load()`` able to rebuild this model.

    The class must implement ``_get_state() -> (params, arrays, extra)`` and the
    classmethod ``_from_state(params, arrays, extra)``.
    """

    def deco(cls):
        _MODEL_REGISTRY[name] = cls._from_state
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
    """Save any registered model (used by each model's ``save``).

    If the model carries external id maps (``model.user_ids`` / ``model.item_ids``:
    index -> external id, set for example by the command line from an Interactions),
    they are stored in the same file and restored by :func:`load`.  So is an optional
    ``model.user_items`` (scipy sparse, users x items: what each user has already seen,
    which ``recommend`` filters out), so that one file serves requests on its own.
    """
    kind = getattr(type(model), "_model_kind", None)
    if kind is None:
        raise ValueError(f"model: {type(model).__name__} is not a registered tastemaker model")
    params, arrays, extra = model._get_state()
    arrays = dict(arrays)
    for name in _ID_MAPS:
        ids = getattr(model, name, None)
        if ids is not None:
            arrays[_ID_PREFIX + name] = _id_array(ids, name)
    ui = getattr(model, "user_items", None)
    if ui is not None:
        import scipy.sparse as sp

        if not sp.issparse(ui):
            raise ValueError(f"model.user_items: expected a scipy sparse matrix, got "
                             f"{type(ui).__name__}")
        ui = sp.csr_matrix(ui)
        arrays[_UI_PREFIX + "indptr"] = ui.indptr.astype(np.int64)
        arrays[_UI_PREFIX + "indices"] = ui.indices.astype(np.int32)
        arrays[_UI_PREFIX + "data"] = ui.data.astype(np.float32)
        arrays[_UI_PREFIX + "shape"] = np.asarray(ui.shape, dtype=np.int64)
    save_archive(path, "model:" + kind, {"params": params, "extra": extra}, arrays)


_BUNDLE_LOADERS: dict[str, Callable[[Any], Any]] = {}


def register_bundle(kind: str, loader: Callable[[Any], Any]) -> None:
    """Make :func:`load` open memory-mapped bundles (:mod:`tastemaker._mapped`) of
    ``kind`` with ``loader(path)`` (the Personalizer registers ``"personalizer"``)."""
    _BUNDLE_LOADERS[kind] = loader


def load(path):
    """Load a model saved with ``model.save(path)`` (the class is read from the file), or
    a bundle such as a Personalizer's ``save(path)``, ready to serve."""
    from . import _mapped

    if _mapped.is_mapped(path):
        kind = _mapped.mapped_kind(path)
        if kind not in _BUNDLE_LOADERS:
            raise ValueError(f"path: {os.fspath(path)!r} holds an unknown bundle kind {kind!r}")
        return _BUNDLE_LOADERS[kind](path)
    header, arrays = load_archive(path, kind="model:*")
    name = header["kind"][len("model:"):]
    if name not in _MODEL_REGISTRY:
        raise ValueError(f"path: {os.fspath(path)!r} holds unknown model type {name!r}")
    id_maps = {k[len(_ID_PREFIX):]: arrays.pop(k) for k in list(arrays) if k.startswith(_ID_PREFIX)}
    ui = {k[len(_UI_PREFIX):]: arrays.pop(k) for k in list(arrays) if k.startswith(_UI_PREFIX)}
    try:
        model = _MODEL_REGISTRY[name](header.get("params", {}), arrays, header.get("extra", {}))
    except (KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"path: {os.fspath(path)!r} is a damaged {name} model ({exc!r})") from None
    for key, ids in id_maps.items():
        if key in _ID_MAPS:
            setattr(model, key, ids)
    if ui:
        model.user_items = _user_items_from(ui, path)
    return model


def _user_items_from(parts: dict, path):
    import scipy.sparse as sp

    from ._validation import check_csr

    try:
        shape = tuple(int(x) for x in parts["shape"])
        m = sp.csr_matrix((parts["data"], parts["indices"], parts["indptr"]), shape=shape)
        return check_csr(m, "user_items", allow_empty=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"path: {os.fspath(path)!r} holds a damaged user_items matrix "
                         f"({exc})") from None
