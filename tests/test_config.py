import io
import os
import subprocess
import sys

import numpy as np
import pytest

import tastemaker
from tastemaker import _core


def test_show_config_reports_version_simd_threads():
    buf = io.StringIO()
    info = tastemaker.show_config(file=buf)
    text = buf.getvalue()
    assert info["version"] == tastemaker.__version__
    assert info["simd"] in info["simd_available"]
    assert "scalar" in info["simd_available"]
    assert info["num_threads"] >= 1
    assert tastemaker.__version__ in text and info["simd"] in text


def _l2_reference() -> int:
    """The per-core L2 as the OS reports it (sysconf, else sysfs), clamped like the library
    does; the library's fallback when neither says."""
    lo, hi, fallback = 128 << 10, 8 << 20, 512 << 10
    try:
        n = os.sysconf("SC_LEVEL2_CACHE_SIZE")
    except (ValueError, OSError, AttributeError):
        n = 0
    if n <= 0:
        root = "/sys/devices/system/cpu/cpu0/cache"
        for k in range(16):
            d = f"{root}/index{k}"
            if not os.path.isdir(d):
                break
            with open(f"{d}/level") as fl, open(f"{d}/type") as ft, open(f"{d}/size") as fs:
                if fl.read().strip() != "2" or ft.read().strip() == "Instruction":
                    continue
                size = fs.read().strip()
            mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(size[-1:].upper(), 1)
            n = int(size.rstrip("KMGkmgB")) * mult
            break
    return fallback if n <= 0 else min(max(n, lo), hi)


def test_show_config_reports_the_l2_size_the_kernels_block_for():
    buf = io.StringIO()
    info = tastemaker.show_config(file=buf)
    assert info["l2_cache_bytes"] == _l2_reference()
    assert f"{info['l2_cache_bytes'] // 1024} KiB" in buf.getvalue()


def test_set_num_threads_roundtrip_and_validation():
    before = tastemaker.get_num_threads()
    try:
        tastemaker.set_num_threads(1)
        assert tastemaker.get_num_threads() == 1
        tastemaker.set_num_threads(0)
        assert tastemaker.get_num_threads() >= 1
    finally:
        tastemaker.set_num_threads(0)
    with pytest.raises(ValueError, match="n:"):
        tastemaker.set_num_threads(-1)
    with pytest.raises(ValueError, match="n:"):
        tastemaker.set_num_threads(1.5)
    assert before >= 1


def test_set_simd_path_rejects_unknown():
    with pytest.raises(ValueError, match="^name: unknown SIMD path") as err:
        tastemaker.set_simd_path("sse9")
    for name in ("scalar", "avx2", "avx512", "avx512vnni"):  # the message lists every path
        assert f"'{name}'" in str(err.value)
    with pytest.raises(ValueError, match="name"):
        tastemaker.set_simd_path(3)


def test_avx512vnni_path_is_a_level_above_avx512():
    """avx512vnni needs AVX-512 plus AVX512-VNNI: where the CPU has it, it is the best path
    and selectable; where it does not, asking for it is a clear ValueError."""
    available = _core.simd_available()
    assert available == ["scalar", "avx2", "avx512", "avx512vnni"][:len(available)]
    before = tastemaker.simd_path()
    if "avx512vnni" in available:
        assert _core.simd_best() == "avx512vnni"
        try:
            tastemaker.set_simd_path("AVX512VNNI")
            assert tastemaker.simd_path() == "avx512vnni"
        finally:
            tastemaker.set_simd_path(before)
    else:
        with pytest.raises(ValueError, match="^name: SIMD path 'avx512vnni' is not supported"):
            tastemaker.set_simd_path("avx512vnni")
        assert tastemaker.simd_path() == before


@pytest.mark.parametrize("path", _core.simd_available())
def test_every_simd_path_agrees_with_numpy(path):
    rng = np.random.default_rng(0)
    before = tastemaker.simd_path()
    try:
        tastemaker.set_simd_path(path)
        assert tastemaker.simd_path() == path
        for n in (0, 1, 15, 16, 17, 100, 1000):
            x = rng.standard_normal(n).astype(np.float32)
            y = rng.standard_normal(n).astype(np.float32)
            ref = float(np.dot(x.astype(np.float64), y.astype(np.float64)))
            assert _core.dot(x, y) == pytest.approx(ref, abs=1e-4 * (1 + n))
    finally:
        tastemaker.set_simd_path(before)


def test_env_variable_forces_lower_path():
    code = "import tastemaker; print(tastemaker.simd_path())"
    env = dict(os.environ, TASTEMAKER_SIMD="scalar")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "scalar"
    env["TASTEMAKER_SIMD"] = "bogus"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0
    assert "ignored" in out.stderr


def test_native_dot_rejects_bad_arrays():
    with pytest.raises(ValueError, match="x: expected dtype float32"):
        _core.dot(np.zeros(3), np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="y: expected shape"):
        _core.dot(np.zeros(3, np.float32), np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.dot(np.zeros(6, np.float32)[::2], np.zeros(3, np.float32))


def test_fma_peak_probe_measures_and_rejects_bad_seconds():
    assert _core.fma_peak_gflops(0.01, 1) > 0.0
    for bad in (0.0, -1.0, 61.0, float("nan")):
        with pytest.raises(ValueError, match="seconds"):
            _core.fma_peak_gflops(bad, 1)


def test_triad_probe_measures_and_rejects_bad_arguments():
    assert _core.triad_gbs(1 << 16, 0.001, 1) > 0.0
    for bad in (0.0, -1.0, 61.0, float("nan")):
        with pytest.raises(ValueError, match="seconds"):
            _core.triad_gbs(1 << 16, bad, 1)
    for bad in (0, 100, -(1 << 20), 1 << 35):
        with pytest.raises(ValueError, match="array_bytes"):
            _core.triad_gbs(bad, 0.01, 1)


def _stub_signatures() -> dict:
    """Name -> parameter names of every function the shipped ``_core.pyi`` declares
    (classes map to None)."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(_core.__file__).with_name("_core.pyi").read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            out[node.name] = [a.arg for a in node.args.args + node.args.kwonlyargs]
        elif isinstance(node, ast.ClassDef):
            out[node.name] = None
    return out


def test_core_stub_declares_every_binding_with_its_parameters():
    """The type stub is what editors and type checkers see: a binding added without its
    stub (as knn_fit/term_weights/corpus_stats once were) or a stale one fails here."""
    stub = _stub_signatures()
    names = {n for n in dir(_core) if not n.startswith("_")}
    assert sorted(names - set(stub)) == [], "bindings missing from _core.pyi"
    assert sorted(set(stub) - names) == [], "_core.pyi declares names the module lacks"
    for name, params in stub.items():
        obj = getattr(_core, name)
        if params is None or not callable(obj) or isinstance(obj, type):
            continue
        first = (obj.__doc__ or "").splitlines()[0]
        if "(" not in first or first.startswith("Overloaded"):
            continue
        inside = first[first.index("(") + 1:first.rindex(")")]
        # pybind11 writes "name: type[ = default]" per parameter; types may hold commas
        declared = [p.split(":")[0].strip() for p in inside.split(", ") if ":" in p.split("=")[0]]
        declared = [p for p in declared if p.isidentifier()]
        assert declared == params, f"{name}: binding parameters {declared}, stub {params}"
