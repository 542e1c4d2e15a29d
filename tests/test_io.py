import json
import zipfile

import numpy as np
import pytest

from tastemaker import io


def test_archive_roundtrip(tmp_path):
    path = tmp_path / "x.npz"
    arrays = {"a": np.arange(5, dtype=np.float32), "ids": np.array(["u1", "ü2"])}
    io.save_archive(path, "interactions", {"params": {"k": 1}}, arrays)
    header, got = io.load_archive(path, kind="interactions")
    assert header["params"] == {"k": 1}
    np.testing.assert_array_equal(got["a"], arrays["a"])
    assert got["ids"].tolist() == ["u1", "ü2"]


def test_rejects_object_arrays(tmp_path):
    with pytest.raises(ValueError, match="object arrays"):
        io.save_archive(tmp_path / "x.npz", "k", {}, {"a": np.array([{}], dtype=object)})


def test_corrupt_foreign_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        io.load_archive(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="not a readable tastemaker file"):
        io.load_archive(junk)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.zeros(3))
    with pytest.raises(ValueError, match="no header"):
        io.load_archive(foreign)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, __header__=np.frombuffer(b'{"format": "tastemaker", "format_version": 1}',
                                               dtype=np.uint8), evil=np.array([object()], dtype=object))
    with pytest.raises(ValueError, match="not a readable"):
        io.load_archive(pickled)
    truncated = tmp_path / "trunc.npz"
    io.save_archive(truncated, "k", {}, {"a": np.zeros(1000)})
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(ValueError, match="not a readable"):
        io.load_archive(truncated)


def test_newer_version_and_wrong_kind(tmp_path):
    path = tmp_path / "m.npz"
    io.save_archive(path, "model:ALS", {}, {})
    with pytest.raises(ValueError, match="expected 'interactions'"):
        io.load_archive(path, kind="interactions")
    future = tmp_path / "future.npz"
    hdr = json.dumps({"format": "tastemaker", "format_version": 99, "kind": "k"}).encode()
    np.savez(future, __header__=np.frombuffer(hdr, dtype=np.uint8))
    with pytest.raises(ValueError, match="format version 99"):
        io.load_archive(future)
    with pytest.raises(ValueError, match="unknown model type"):
        io.save_archive(path, "model:Nope", {}, {})
        io.load(path)
    assert zipfile.is_zipfile(path)
