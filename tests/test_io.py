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


@io.register_model("_TestModel")
class _TestModel:
    def __init__(self, w):
        self.w = w

    def _get_state(self):
        return {"scale": 2}, {"w": self.w}, {"note": "x"}

    @classmethod
    def _from_state(cls, params, arrays, extra):
        assert params == {"scale": 2} and extra == {"note": "x"}
        return cls(arrays["w"])


def test_model_registry_roundtrip_with_id_maps(tmp_path):
    m = _TestModel(np.arange(3, dtype=np.float32))
    m.user_ids = np.array(["alice", "bob"], dtype=object)
    m.item_ids = np.array([10, 20, 30], dtype=object)
    path = tmp_path / "m.npz"
    io.save_model(m, path)
    got = io.load(path)
    np.testing.assert_array_equal(got.w, m.w)
    assert got.user_ids.tolist() == ["alice", "bob"]
    assert got.item_ids.dtype == np.int64 and got.item_ids.tolist() == [10, 20, 30]
    with pytest.raises(ValueError, match="not a registered"):
        io.save_model(object(), path)


def test_model_file_carries_seen_items(tmp_path):
    import scipy.sparse as sp

    m = _TestModel(np.arange(3, dtype=np.float32))
    m.user_items = sp.csr_matrix(np.array([[0, 1.5, 0], [2, 0, -1]], dtype=np.float32))
    path = tmp_path / "m.npz"
    io.save_model(m, path)
    got = io.load(path)
    assert got.user_items.shape == (2, 3)
    np.testing.assert_array_equal(got.user_items.toarray(), m.user_items.toarray())
    m.user_items = np.zeros((2, 3))
    with pytest.raises(ValueError, match="model.user_items"):
        io.save_model(m, path)
    # a damaged matrix inside an otherwise valid file is a ValueError naming the path
    header, arrays = io.load_archive(tmp_path / "m.npz")
    arrays["useritems__indptr"] = np.array([0, 5, 1], dtype=np.int64)
    io.save_archive(tmp_path / "bad.npz", header["kind"], {k: v for k, v in header.items()
                                                           if k in ("params", "extra")}, arrays)
    with pytest.raises(ValueError, match="bad.npz"):
        io.load(tmp_path / "bad.npz")
