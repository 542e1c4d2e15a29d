#include <cmath>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "tastemaker/simd.hpp"
#include "tastemaker/threads.hpp"
#include "tastemaker/als.hpp"
#include "tastemaker/probe.hpp"
#include "tastemaker/solve.hpp"
#include "tastemaker/topk.hpp"
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
    for (int i = 0; i < simd::kIsaCount; ++i)  // every name parses back to its path
        TM_CHECK(simd::parse_isa(simd::isa_name(static_cast<simd::Isa>(i))) == static_cast<simd::Isa>(i));
    TM_CHECK(simd::parse_isa("AVX512VNNI") == simd::Isa::AVX512VNNI);
    try {
        simd::parse_isa("avx512_vnni");
        TM_CHECK(false);
    } catch (const std::invalid_argument& e) {  // the message lists every valid name
        const std::string msg = e.what();
        TM_CHECK(msg.find("'avx512vnni'") != std::string::npos && msg.find("'scalar'") != std::string::npos);
    }
    const simd::Isa before = simd::active();
    simd::set_active(simd::Isa::Scalar);
    TM_CHECK(simd::active() == simd::Isa::Scalar);
    simd::set_active(before);
}

// Every kernel family's table is complete on every path the CPU has, and its own tables
// too (no fallback): ALS is written once over the ops layer, and every top-k path has
// every entry (the self-join's self_scores and every path's query_scores included).
TM_TEST(every_dispatch_table_is_complete_on_every_path) {
    for (simd::Isa isa : simd::available()) {
        tmtest::check_table("als", als_kernels_dispatch(), isa, true);
        tmtest::check_table("topk", topk_kernels_dispatch(), isa, true);
        tmtest::check_table("probe", probe_kernels_dispatch(), isa, true);
        tmtest::check_table("solve", solve_kernels_dispatch(), isa, true);
    }
}

// The levels are nested: a CPU with a path has every lower one, so available() is a prefix
// of the paths and best() its last.
TM_TEST(simd_levels_are_nested) {
    const std::vector<simd::Isa> av = simd::available();
    for (std::size_t i = 0; i < av.size(); ++i) TM_CHECK(static_cast<int>(av[i]) == static_cast<int>(i));
    TM_CHECK(av.back() == simd::best());
}

// avx512vnni only changes top-k's int8 dot products: top-k has its own table there, and the
// families without int8 products run avx512's table whole, as declared
// (TASTEMAKER_SIMD_DISPATCH_VNNI_AS_AVX512), not through borrowed entries.  Below it every
// family has its own table on every path (x86 builds).
TM_TEST(avx512vnni_runs_its_own_topk_and_avx512s_other_kernels) {
    const simd::Isa vnni = simd::Isa::AVX512VNNI, avx512 = simd::Isa::AVX512;
#ifdef TASTEMAKER_HAVE_X86_KERNELS
    TM_CHECK(!topk_kernels_dispatch().same_as_lower(vnni));
    TM_CHECK(topk_kernels(vnni).self_bounds != topk_kernels(avx512).self_bounds);
    TM_CHECK(topk_kernels(vnni).query_bounds != topk_kernels(avx512).query_bounds);
    for (simd::Isa isa : {simd::Isa::AVX2, avx512}) {
        TM_CHECK(!als_kernels_dispatch().same_as_lower(isa) && !probe_kernels_dispatch().same_as_lower(isa));
        TM_CHECK(!solve_kernels_dispatch().same_as_lower(isa) && !topk_kernels_dispatch().same_as_lower(isa));
    }
#endif
    TM_CHECK(als_kernels_dispatch().same_as_lower(vnni) && als_kernels_dispatch().borrowed(vnni) == 0);
    TM_CHECK(probe_kernels_dispatch().same_as_lower(vnni) && probe_kernels_dispatch().borrowed(vnni) == 0);
    TM_CHECK(solve_kernels_dispatch().same_as_lower(vnni) && solve_kernels_dispatch().borrowed(vnni) == 0);
    TM_CHECK(als_kernels(vnni).cg_row == als_kernels(avx512).cg_row);
    TM_CHECK(probe_kernels(vnni).fma_chains == probe_kernels(avx512).fma_chains);
    TM_CHECK(solve_kernels(vnni).cholesky_solve == solve_kernels(avx512).cholesky_solve);
    TM_CHECK(!als_kernels_dispatch().same_as_lower(simd::Isa::Scalar));
}

namespace {
struct ToyTable {
    int (*a)();
    int (*b)();
    static constexpr auto entries() { return std::make_tuple(&ToyTable::a, &ToyTable::b); }
};
int one() { return 1; }
int two() { return 2; }
int three() { return 3; }
}  // namespace

// A null entry falls back level by level to the next lower path's resolved entry; a path
// missing from the build is the lower one whole.
TM_TEST(dispatch_falls_back_to_the_next_lower_path) {
    const ToyTable scalar{one, two}, avx2{three, nullptr}, avx512{nullptr, nullptr}, vnni{nullptr, one};
    const ToyTable* const own[simd::kIsaCount] = {&scalar, &avx2, &avx512, &vnni};
    const simd::Dispatch<ToyTable> d(own);
    TM_CHECK(d.get(simd::Isa::Scalar).a() == 1 && d.get(simd::Isa::Scalar).b() == 2);
    TM_CHECK(d.get(simd::Isa::AVX2).a() == 3 && d.get(simd::Isa::AVX2).b() == 2);
    TM_CHECK(d.get(simd::Isa::AVX512).a() == 3 && d.get(simd::Isa::AVX512).b() == 2);
    TM_CHECK(d.get(simd::Isa::AVX512VNNI).a() == 3 && d.get(simd::Isa::AVX512VNNI).b() == 1);
    TM_CHECK(d.borrowed(simd::Isa::Scalar) == 0 && d.borrowed(simd::Isa::AVX2) == 1 &&
             d.borrowed(simd::Isa::AVX512) == 2 && d.borrowed(simd::Isa::AVX512VNNI) == 1);
    for (int i = 0; i < simd::kIsaCount; ++i) TM_CHECK(!d.same_as_lower(static_cast<simd::Isa>(i)));
    const ToyTable* const partial[simd::kIsaCount] = {&scalar, nullptr, nullptr, nullptr};
    const simd::Dispatch<ToyTable> d2(partial);
    TM_CHECK(d2.get(simd::Isa::AVX512).a() == 1 && d2.borrowed(simd::Isa::AVX512) == 0);
    TM_CHECK(d2.get(simd::Isa::AVX512VNNI).b() == 2 && d2.same_as_lower(simd::Isa::AVX512VNNI));
}

// A level that names the lower level's table (TASTEMAKER_SIMD_DISPATCH_VNNI_AS_AVX512)
// runs the lower level's resolved table whole, borrowed entries included, and says so.
TM_TEST(dispatch_level_declared_as_the_lower_one) {
    const ToyTable scalar{one, two}, avx2{three, nullptr}, avx512{nullptr, three};
    const ToyTable* const own[simd::kIsaCount] = {&scalar, &avx2, &avx512, &avx512};
    const simd::Dispatch<ToyTable> d(own);
    TM_CHECK(d.get(simd::Isa::AVX512VNNI).a() == 3 && d.get(simd::Isa::AVX512VNNI).b() == 3);
    TM_CHECK(d.same_as_lower(simd::Isa::AVX512VNNI) && !d.same_as_lower(simd::Isa::AVX512));
    TM_CHECK(d.borrowed(simd::Isa::AVX512) == 1 && d.borrowed(simd::Isa::AVX512VNNI) == 0);
}

TM_TEST(active_isa_is_restored_after_scope) {
    const simd::Isa before = simd::active();
    tmtest::for_each_isa([&](simd::Isa isa) { TM_CHECK(simd::active() == isa); });
    TM_CHECK(simd::active() == before);
}

TM_TEST(dot_agrees_with_float64_on_every_path) {
    std::mt19937 rng(7);
    std::normal_distribution<float> g;
    for (std::size_t n : {0, 1, 7, 15, 16, 17, 31, 33, 64, 100, 1001}) {
        std::vector<float> x(n), y(n);
        for (auto& v : x) v = g(rng);
        for (auto& v : y) v = g(rng);
        double ref = 0;
        for (std::size_t i = 0; i < n; ++i) ref += double(x[i]) * y[i];
        tmtest::for_each_isa([&](simd::Isa isa) {
            TM_CHECK_NEAR(als_kernels(isa).dot(x.data(), y.data(), n), ref, 1e-4 * (1 + n));
        });
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

TM_TEST(fma_probe_counts_its_work_on_every_path) {
    tmtest::check_table("probe", probe_kernels_dispatch(), simd::Isa::Scalar, true);
    tmtest::for_each_isa([&](simd::Isa isa) {
        tmtest::check_table("probe", probe_kernels_dispatch(), isa, true);
        double flops = 0.0;
        const float r = probe_kernels().fma_chains(1000, 1.0f, &flops);
        TM_CHECK(std::isfinite(r));
        TM_CHECK(flops >= 2.0 * 1000 * 12);
        TM_CHECK(fma_peak_gflops(0.01, 1) > 0.0);
    });
    TM_CHECK_THROWS(fma_peak_gflops(0.0, 1), std::invalid_argument);
}

TM_TEST(triad_probe_measures_and_rejects_bad_sizes) {
    TM_CHECK(triad_gbs(1 << 16, 0.001, 1) > 0.0);
    TM_CHECK(triad_gbs(1 << 16, 0.001, 2) > 0.0);
    TM_CHECK_THROWS(triad_gbs(1 << 16, 0.0, 1), std::invalid_argument);
    TM_CHECK_THROWS(triad_gbs(1 << 16, 61.0, 1), std::invalid_argument);
    TM_CHECK_THROWS(triad_gbs(100, 0.01, 1), std::invalid_argument);
    TM_CHECK_THROWS(triad_gbs(std::int64_t(1) << 35, 0.01, 1), std::invalid_argument);
}
