"""Runtime configuration: SIMD path, thread count, ``show_config``."""

from __future__ import annotations

import os
import sys
import warnings

from . import _core

__all__ = ["show_config", "set_num_threads", "get_num_threads", "simd_path", "set_simd_path"]

_ENV_SIMD = "TASTEMAKER_SIMD"


def _apply_env_simd() -> None:
    """Honour ``TASTEMAKER_SIMD`` (``scalar``, ``avx2``, ``avx512`` or ``avx512vnni``) at import.

    A path the CPU cannot run falls back to the best one it can, with a warning; an
    unknown name is reported the same way, so a typo never stops the import.
    """
    value = os.environ.get(_ENV_SIMD, "").strip()
    if not value:
        return
    try:
        _core.simd_set(value)
    except ValueError as exc:
        warnings.warn(f"{_ENV_SIMD}={value!r} ignored: {exc}", RuntimeWarning, stacklevel=3)


def simd_path() -> str:
    """The SIMD path the kernels use now: ``"avx512vnni"``, ``"avx512"``, ``"avx2"`` or
    ``"scalar"``."""
    return _core.simd_active()


def set_simd_path(name: str) -> None:
    """Force a SIMD path (``"scalar"``, ``"avx2"``, ``"avx512"``, ``"avx512vnni"``) for the
    whole process.  ``avx512vnni`` is ``avx512`` plus AVX512-VNNI (Ice Lake and later Xeons,
    Zen 4/5): the same kernels, with the int8 pre-filters' dot products in one instruction.

    Raises ``ValueError`` when the name is unknown or the CPU cannot run that path.
    """
    if not isinstance(name, str):
        raise ValueError(f"name: expected a str, got {type(name).__name__}")
    try:
        _core.simd_set(name)
    except ValueError as exc:
        raise ValueError(f"name: {exc}") from None


def set_num_threads(n: int) -> None:
    """Set the default number of OpenMP threads for every kernel (0 = OpenMP default).

    Models also take ``num_threads``; a non-zero value there wins for that model.  More
    than 4x the CPU count is clamped to that, with a ``RuntimeWarning``.
    """
    from ._validation import check_num_threads

    _core.set_num_threads(check_num_threads(n, "n"))


def get_num_threads() -> int:
    """The default number of OpenMP threads kernels use."""
    return _core.get_num_threads()


def show_config(file=None) -> dict:
    """Print (and return) the version, SIMD path in use, paths available, threads and the
    per-core L2 size the kernels block for (``l2_cache_bytes``)."""
    info = {
        "version": _core.__version__,
        "simd": _core.simd_active(),
        "simd_best": _core.simd_best(),
        "simd_available": list(_core.simd_available()),
        "openmp": bool(_core.have_openmp()),
        "num_threads": _core.get_num_threads(),
        "l2_cache_bytes": _core.l2_cache_bytes(),
        "python": sys.version.split()[0],
    }
    out = file if file is not None else sys.stdout
    print(f"tastemaker {info['version']}", file=out)
    print(f"  SIMD path:      {info['simd']} (best on this CPU: {info['simd_best']})", file=out)
    print(f"  SIMD available: {', '.join(info['simd_available'])}", file=out)
    print(f"  OpenMP:         {'yes' if info['openmp'] else 'no'}, {info['num_threads']} threads",
          file=out)
    print(f"  L2 per core:    {info['l2_cache_bytes'] // 1024} KiB", file=out)
    print(f"  Python:         {info['python']}", file=out)
    return info


_apply_env_simd()
