// Version, SIMD dispatch and thread-count controls.
#include <string>

#include "common.hpp"
#include "tastemaker/simd.hpp"
#include "tastemaker/threads.hpp"
#include "tastemaker/als.hpp"
#include "tastemaker/probe.hpp"

namespace tastemaker::py_bindings {
namespace {

void register_config(py::module_& m) {
    m.attr("__version__") = TASTEMAKER_VERSION;
    m.def("simd_active", [] { return std::string(simd::isa_name(simd::active())); },
          "Name of the SIMD path kernels use now.");
    m.def("simd_best", [] { return std::string(simd::isa_name(simd::best())); });
    m.def("simd_available", [] {
        std::vector<std::string> out;
        for (auto isa : simd::available()) out.emplace_back(simd::isa_name(isa));
        return out;
    });
    m.def("simd_set", [](const std::string& name) { simd::set_active(simd::parse_isa(name)); },
          py::arg("name"), "Select a SIMD path; ValueError if unknown or unsupported.");
    m.def("set_num_threads", [](int n) { set_num_threads(n); }, py::arg("n"));
    m.def("get_num_threads", [] { return get_num_threads(); });
    m.def("have_openmp", [] { return have_openmp(); });
    m.def("l2_cache_bytes", [] { return simd::l2_cache_bytes(); },
          "Per-core L2 bytes the kernels block for (detected once; a fallback when unknown).");
    m.def(
        "dot",
        [](const py::array& x, const py::array& y) {
            const float* px = checked_ptr<float>(x, "x", 1);
            const float* py_ = checked_ptr<float>(y, "y", 1);
            check_dim(y, 0, x.shape(0), "y");
            return als_kernels().dot(px, py_, static_cast<std::size_t>(x.shape(0)));
        },
        py::arg("x"), py::arg("y"), "float32 dot product on the active SIMD path (for tests).");
    m.def(
        "fma_peak_gflops",
        [](double seconds, int num_threads) {
            py::gil_scoped_release nogil;
            return fma_peak_gflops(seconds, num_threads);
        },
        py::arg("seconds") = 0.2, py::arg("num_threads") = 0,
        "Measured fp32 multiply-add throughput (GFLOP/s) of the active SIMD path on num_threads "
        "threads (bench/: the peak kernel figures are reported against).");
    m.def(
        "triad_gbs",
        [](std::int64_t array_bytes, double seconds, int num_threads) {
            py::gil_scoped_release nogil;
            return triad_gbs(array_bytes, seconds, num_threads);
        },
        py::arg("array_bytes"), py::arg("seconds") = 0.2, py::arg("num_threads") = 0,
        "Measured memory bandwidth (GB/s, STREAM triad over three float arrays of array_bytes "
        "each) on num_threads threads (bench/: the bandwidth kernel figures are reported against).");
}

}  // namespace
TM_REGISTER_BINDINGS(register_config);
}  // namespace tastemaker::py_bindings
