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


# ------------------------------------------------------------------ save safety (issue 9)
def _model():
    import scipy.sparse as sp

    import tastemaker

    x = sp.random(20, 15, density=0.3, format="csr", random_state=0, dtype=np.float32)
    return tastemaker.ALS(factors=3, iterations=1, random_state=0).fit(x, show_progress=False)


def test_save_never_follows_a_planted_tmp_symlink(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "out.npz.tmp").symlink_to(victim)  # the old fixed temporary name
    _model().save(tmp_path / "out.npz")
    assert victim.read_text() == "precious"
    assert io.load(tmp_path / "out.npz").item_factors.shape == (15, 3)


def test_failed_save_leaves_no_temporary_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    model = _model()
    model.save(path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(io, "_write_npz", boom)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]
    assert path.read_bytes() == before


def test_concurrent_saves_to_one_path_leave_a_valid_file(tmp_path):
    import threading

    path = tmp_path / "m.npz"
    models = [_model() for _ in range(4)]
    threads = [threading.Thread(target=m.save, args=(path,)) for m in models for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = io.load(path)
    np.testing.assert_array_equal(got.item_factors, models[0].item_factors)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def test_save_refuses_non_regular_targets_and_writes_through_symlinks(tmp_path):
    import os

    model = _model()
    for target in ("/dev/null", str(tmp_path)):
        with pytest.raises(ValueError, match="path: .* (not a regular file|a directory)"):
            model.save(target)
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo")
        with pytest.raises(ValueError, match="not a regular file"):
            model.save(tmp_path / "fifo")
    real = tmp_path / "real.npz"
    model.save(real)
    link = tmp_path / "link.npz"
    link.symlink_to(real)
    _model().save(link)
    assert link.is_symlink()  # the link stays; its target was replaced
    assert io.load(real).item_factors.shape == (15, 3)
    with pytest.raises(ValueError, match="directory .* does not exist"):
        model.save(tmp_path / "missing" / "m.npz")


# ------------------------------------------------------------------ load robustness (issue 9)
def _assert_clean_refusal(path):
    with pytest.raises(ValueError) as info:
        io.load(path)
    msg = str(info.value)
    assert msg.startswith("path:") and "allow_pickle" not in msg, msg


def test_foreign_corrupt_and_hostile_files_are_one_value_error(tmp_path):
    good = tmp_path / "good.npz"
    _model().save(good)
    raw = good.read_bytes()
    cases = {}
    np.save(tmp_path / "plain.npy", np.arange(5))
    cases["plain.npy"] = (tmp_path / "plain.npy").read_bytes()
    cases["random"] = np.random.default_rng(0).bytes(4096)
    cases["empty"] = b""
    cases["truncated"] = raw[: len(raw) // 2]
    rng = np.random.default_rng(1)
    for k in range(25):  # bit flips all over the file
        flipped = bytearray(raw)
        pos = int(rng.integers(0, len(raw)))
        flipped[pos] ^= 1 << int(rng.integers(0, 8))
        cases[f"flip{k}"] = bytes(flipped)
    for name, blob in cases.items():
        p = tmp_path / f"{name}.npz"
        p.write_bytes(blob)
        try:
            io.load(p)  # a flip inside a factor's bytes may still load: that is fine
        except ValueError as exc:
            assert str(exc).startswith("path:") and "allow_pickle" not in str(exc), (name, exc)
    for name in ("plain.npy", "random", "empty", "truncated"):
        _assert_clean_refusal(tmp_path / f"{name}.npz")


def _archive(path, header_obj, **arrays):
    blob = np.frombuffer(json.dumps(header_obj).encode(), dtype=np.uint8) \
        if not isinstance(header_obj, bytes) else np.frombuffer(header_obj, dtype=np.uint8)
    np.savez(path, __header__=blob, **arrays)


def test_headers_of_the_wrong_types_and_deep_json(tmp_path):
    base = {"format": "tastemaker", "format_version": 1, "kind": "model:ALS"}
    bad = {
        "list": [1, 2],
        "version_str": {**base, "format_version": "1"},
        "version_bool": {**base, "format_version": True},
        "kind_int": {**base, "kind": 5},
        "params_list": {**base, "params": [1], "extra": {}},
        "params_wrong": {**base, "params": {"factors": "x"}, "extra": {}},
        "fitted_str": {**base, "params": {}, "extra": {}, "fitted": "no"},
        "no_arrays": {**base, "params": {}, "extra": {}},
    }
    for name, hdr in bad.items():
        _archive(tmp_path / f"{name}.npz", hdr)
        _assert_clean_refusal(tmp_path / f"{name}.npz")
    deep = b'{"format": "tastemaker", "a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    _archive(tmp_path / "deep.npz", deep)
    _assert_clean_refusal(tmp_path / "deep.npz")
    _archive(tmp_path / "notutf8.npz", b"\xff\xfe")
    _assert_clean_refusal(tmp_path / "notutf8.npz")
    # factors of the wrong dtype or shape
    _archive(tmp_path / "strings.npz", {**base, "params": {}, "extra": {}},
             user_factors=np.array(["a"]), item_factors=np.array(["b"]))
    _assert_clean_refusal(tmp_path / "strings.npz")


def test_absurd_declared_sizes_are_refused_before_allocating(tmp_path):
    import io as pyio

    good = tmp_path / "good.npz"
    _model().save(good)
    header = {"format": "tastemaker", "format_version": 1, "kind": "model:ALS",
              "params": {}, "extra": {}}
    p = tmp_path / "huge.npz"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("__header__.npy", _npy(np.frombuffer(json.dumps(header).encode(),
                                                          dtype=np.uint8)))
        member = pyio.BytesIO()
        np.lib.format.write_array_header_1_0(
            member, {"descr": "<f4", "fortran_order": False, "shape": (10**12, 64)})
        member.write(b"\0" * 64)  # a few bytes where 256 TB are declared
        zf.writestr("user_factors.npy", member.getvalue())
        zf.writestr("item_factors.npy", _npy(np.zeros((3, 64), np.float32)))
    _assert_clean_refusal(p)
    with pytest.raises(ValueError, match="declares 256000000000000 bytes"):
        io.load(p)
    # an id map or seen-items matrix that does not fit the model
    header, arrays = io.load_archive(good)
    arrays["idmap__user_ids"] = np.arange(7)
    io.save_archive(tmp_path / "ids.npz", header["kind"],
                    {k: header[k] for k in ("params", "extra")}, arrays)
    with pytest.raises(ValueError, match="user_ids: 7 ids for 20 users"):
        io.load(tmp_path / "ids.npz")


def test_save_refuses_id_maps_that_do_not_fit_after_growth(tmp_path):
    import scipy.sparse as sp

    model = _model()
    model.user_ids = np.array([f"u{i}" for i in range(20)])
    model.partial_fit_users([20], sp.csr_matrix(np.ones((1, 15), np.float32)))
    with pytest.raises(ValueError, match="model.user_ids: 20 external ids for 21 users"):
        model.save(tmp_path / "m.npz")
    model.user_ids = np.append(model.user_ids, "u20")
    model.save(tmp_path / "m.npz")
    assert io.load(tmp_path / "m.npz").user_ids.tolist()[-1] == "u20"


def _npy(arr) -> bytes:
    import io as pyio

    buf = pyio.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()
