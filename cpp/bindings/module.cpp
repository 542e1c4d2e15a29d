// The pybind11 module tastemaker._core: runs every register_*.cpp's registrar.
#include "common.hpp"

PYBIND11_MODULE(_core, m) {
    m.doc() = "tastemaker native core (C++17, SIMD + OpenMP). Private: use the tastemaker package.";
    for (auto& reg : tastemaker::py_bindings::registrars()) reg(m);
}
