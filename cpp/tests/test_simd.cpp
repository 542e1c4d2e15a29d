#include <random>
#include <stdexcept>
#include <vector>

#include "tastemaker/simd.hpp"
#include "tastemaker/threads.hpp"
#include "tastemaker/vec.hpp"
#include "testing.hpp"

using namespace tastemaker;

TM_TEST(simd_scalar_always_available) {
    TM_CHECK(simd::supported(simd::Isa::Scalar));
    TM_CHECK(!simd::available().empty());
    TM_CHECK(simd::available().front() == simd::Isa::Scalar);
    TM_CHECK(simd::supported(simd::best()));
}

TM_TEST(simd_parse_and_set) {
    TM_CHECK(simd::parse_isa("AVX2") == simd::Isa::AVX2);
    TM_CHECK_THROWS(simd::parse_isa("sse9"), std::invalid_argument);
    const simd::Isa before = simd::active();
    simd::set_active(simd::Isa::Scalar);
    TM_CHECK(simd::active() == simd::Isa::Scalar);
    simd::set_active(before);
}

TM_TEST(vec_kernels_agree_with_scalar_on_every_path) {
    std::mt19937 rng(7);
    std::normal_distribution<float> g;
    for (std::size_t n : {0, 1, 7, 15, 16, 17, 31, 33, 64, 100, 1001}) {
        std::vector<float> x(n), y(n);
        for (auto& v : x) v = g(rng);
        for (auto& v : y) v = g(rng);
        double ref = 0;
        for (std::size_t i = 0; i < n; ++i) ref += double(x[i]) * y[i];
        for (simd::Isa isa : simd::available()) {
            const VecKernels& k = vec_kernels(isa);
            TM_CHECK_NEAR(k.dot(x.data(), y.data(), n), ref, 1e-4 * (1 + n));
            std::vector<float> z(y);
            k.axpy(0.5f, x.data(), z.data(), n);
            for (std::size_t i = 0; i < n; ++i) TM_CHECK_NEAR(z[i], y[i] + 0.5 * x[i], 1e-5);
        }
    }
}

TM_TEST(threads_resolve) {
    TM_CHECK(get_num_threads() >= 1);
    TM_CHECK(resolve_threads(3) == 3);
    set_num_threads(2);
    TM_CHECK(resolve_threads(0) == 2);
    set_num_threads(0);
    TM_CHECK(resolve_threads(0) >= 1);
}
