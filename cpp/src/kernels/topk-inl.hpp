// Top-k kernels, written once over the ops layer (ops_scalar.hpp documents it) and compiled
// once per instruction set by kernels/topk_<isa>.cpp, which defines TM_KERNEL_NS and
// includes the ISA's ops header first.  No include guard on purpose: one inclusion per
// translation unit, inside that ISA's namespace.  No std:: templates here (see simd.hpp).
//
// What the driver (cpp/src/topk.cpp) gets from here, per path (TopkKernels in topk.hpp):
//   * pack_panel: n_items x dim rows -> 32-wide panels (dim x 32), a kLanes x kLanes
//     in-register transpose per block of kLanes items and factors;
//   * panel_scores: a register tile of kTileRows queries x 32 items, one Ops::fma per
//     factor in factor order (one rounding on every path, std::fma on scalar: scores are
//     bit-identical across paths), then one compare per vector against each query's bar;
//   * block_scores: the scan of many queries, a block of queries x a chunk of panels, query
//     groups in L1 meeting the chunk's panels in L2, in tiles of 6 queries x 2 panels on
//     AVX-512 (fewer loads per FMA than 12 x 1) and kTileRows x 1 elsewhere; only the
//     (query, panel) pairs with a score above the bar leave as hits (a row without one is
//     skipped after one max-and-compare, a row with one appended without a branch);
//   * self_scores: the self-join's tile (similar_items for every item scores a pair once,
//     for both rows): panel_scores' scores, each against its row's bar and against the bar
//     of the item's own row, and only the rows with a score above either leave;
//   * column_max, row_masks: the scan's seed (a block's first chunk scored in full, a
//     lower bound of each query's k-th score from its column maxima, then its hits);
//   * query_scores: one query against several panels at a time (kQueryGroup panels: the
//     chains a single query needs to keep both FMA pipes busy);
//   * query_bounds: the pre-filter's scan of PackedItems' int8 copy (a quarter of the
//     bytes): exact integer dot products with the int8-quantised query, four factors per
//     lane and instruction (vpmaddubsw; eight factors per int16-to-int32 step, as the
//     items' values are 7-bit; one vpdpbusd per four factors on AVX-512 VNNI), then each
//     item's approximate score and its error bounds;
//   * self_bounds: the same bounds for a group of rows (the self-join's rows, prepared as
//     queries) x one int8 panel, in a register tile, each upper bound against min(row bar,
//     column bar): only the rows with a bit set are scored exactly (self_scores).  Per 8
//     items x 8 factors a row takes 2 vpmaddubsw + 1 vpmaddwd (AVX2; 2 vpdpbusd per 16
//     items on AVX-512 VNNI) against 8 FMAs; on AVX-512 and scalar it measured no faster
//     than the float32 tile, so those paths keep the float32 self-join by default
//     (kSelfPrefilter).  The batch scan (users x items) uses self_bounds with +inf column
//     bars for its own pre-filter (kUserPrefilter);
//   * pair_scores: single (row, column) pairs, the tiles' fma chain, for the pre-filters'
//     rows with a few candidates;
//   * finite_absmax: the validation scan (max |x|, and whether any x is NaN or inf).
//
// FLOPs and bytes: a panel_scores call is 2 * m * dim * 32 flops over dim * 32 * 4 bytes of
// panel (from L2/L3: it is the streamed operand) and m * dim * 4 bytes of queries (L1).
// Per factor the AVX-512 tile does 24 FMAs (12 cycles on two FMA pipes) against 2 panel
// loads and 12 broadcasts; the AVX2 tile 12 FMAs against 3 broadcasts and 12 panel loads
// from L1 (the FMA's memory operand).  Both are bound by the FMA pipes, not by loads.
#include <cmath>
#include <cstdint>

#include "tastemaker/topk.hpp"

#if defined(__GNUC__) || defined(__clang__)
#define TM_TOPK_INLINE __attribute__((always_inline)) inline
#else
#define TM_TOPK_INLINE inline
#endif

namespace tastemaker::kernels::TM_KERNEL_NS {
namespace topk {

using V = Ops::V;
constexpr int L = Ops::kLanes;
/** Vectors per 32-item panel row. */
constexpr int C = kTopkPanel / L;
static_assert(kTopkPanel % L == 0, "a panel row is a whole number of vectors");

/** Queries per register tile: as many accumulators as the register file holds.  AVX-512
 *  (32 zmm): 12 x 2 accumulators + 2 panel vectors + 1 broadcast.  AVX2 (16 ymm): 3 x 4
 *  accumulators + 1 broadcast, the panel row as the FMA's memory operand (a 6 x 16 tile
 *  needs 6 broadcasts + 2 loads per 12 FMAs and measured a little slower on Zen 3, where
 *  broadcasts are the dearer operation).  Scalar: one query (the reference, not tuned). */
constexpr int kTileRows = L >= 16 ? 12 : L >= 8 ? 3 : 1;
/** Panels per query_scores group: 2 x 4 = 8 chains on AVX-512, 4 x 3 = 12 on AVX2 (enough
 *  for a 4-cycle FMA latency on two pipes; one panel alone is latency-bound). */
constexpr int kQueryGroup = L >= 16 ? 4 : L >= 8 ? 3 : 1;
/** Queries per block (TopkKernels::query_block): each packed panel is streamed from L3 (or
 *  DRAM) once per block, the block's query rows are reused from L1/L2 for every panel.  192
 *  on both SIMD paths: 48 KB of query rows at 64 factors (in L2), and a quarter of the
 *  panel traffic of 48-query blocks (4.9 instead of 19.8 GB for top-k of all ML-20M users).
 *  AVX2 measured 10-20% faster with 192 than 48 on a shared Zen 3; AVX-512, on the shared
 *  Xeon at load ~20, 101-110 against 86-106 GFLOP per CPU-second (48 was ~7% ahead in a
 *  kernel-only loop at lower load: the streamed panels are the part the load hurts). */
constexpr int kQueryBlock = L >= 8 ? 192 : 48;
/** Bytes of query rows per block_scores group: a quarter of a 48 KB L1, so that the group,
 *  the panel being read and the next one fit together (64 factors: 60 queries on AVX-512,
 *  63 on AVX2). */
constexpr std::int64_t kGroupBytes = 16 * 1024;

// Scores of one tile row into scores[0..32) and its mask against bar t.
TM_TOPK_INLINE std::uint32_t store_and_mask(const V* acc, V t, float* scores) {
    std::uint32_t bits = 0;
#pragma GCC unroll 32
    for (int c = 0; c < C; ++c) {
        Ops::store(scores + L * c, acc[c]);
        bits |= Ops::bits(Ops::gt(acc[c], t)) << (L * c);
    }
    return bits;
}

// Whether any lane of the n vectors v[] is above bar t (scores are finite: the max is).
// Past the first chunks of a scan a row almost never has a hit, so block_scores tests
// this first and skips the row behind a well-predicted branch: one max per vector and
// one compare, instead of storing every row's 32 scores and mask and appending it without
// a branch (the per-tile epilogue was ~5% of an in-L1 tile at 64 factors).
TM_TOPK_INLINE bool any_above(const V* v, int n, V t) {
    V mx = v[0];
#pragma GCC unroll 32
    for (int c = 1; c < n; ++c) mx = Ops::max(mx, v[c]);
    return __builtin_expect(Ops::bits(Ops::gt(mx, t)) != 0, 0);
}

// Where block_scores appends its hits (see TopkKernels::block_scores).
struct Hits {
    float* scores;
    std::int32_t* rows;
    std::uint32_t* masks;
    std::int64_t count;
};

// Where self_scores appends its hits (see TopkKernels::self_scores).
struct SelfHits {
    float* scores;
    std::int32_t* rows;
    std::uint32_t* rmasks;
    std::uint32_t* cmasks;
    std::int64_t count;
};

// The register tile's arithmetic, shared by tile() and self_tile(): acc[i][c] = the
// scores of query i (row q + i * ldq) against lanes [L c, L c + L) of the panel, one
// Ops::fma per factor in factor order from 0 (the bits every path and the scalar
// reference agree on).  The unroll pragmas keep acc[][] in registers (without them GCC
// stores every accumulator once per factor).
template <int M>
TM_TOPK_INLINE void tile_scores(const float* q, std::int64_t ldq, int dim, const float* panel, V (&acc)[M][C]) {
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 32
        for (int c = 0; c < C; ++c) acc[i][c] = Ops::zero();
    const float* p = panel;
    for (int k = 0; k < dim; ++k, p += kTopkPanel) {
#pragma GCC unroll 16
        for (int i = 0; i < M; ++i) {
            const V a = Ops::broadcast(q + i * ldq + k);
#pragma GCC unroll 32
            for (int c = 0; c < C; ++c) acc[i][c] = Ops::fma(a, Ops::load(p + L * c), acc[i][c]);
        }
    }
}

// M queries (rows q + i * ldq) x one panel, row i's mask against bar thr[i].  kAll
// (panel_scores): every row's scores to scores[i * 32 ...] and its mask to masks[i].
// Otherwise (block_scores): a row with no score above its bar is skipped (any_above); any
// other row is appended to `hits` without a further branch (its scores and
// mask written at the next free slot, the count advanced only when a score passes), as
// hit row `row0 + i * row_step`.
template <int M, bool kAll>
TM_TOPK_INLINE void tile(const float* q, std::int64_t ldq, int dim, const float* panel, const float* thr,
                         float* scores, std::uint32_t* masks, Hits* hits, std::int32_t row0, std::int32_t row_step) {
    V acc[M][C];
    tile_scores<M>(q, ldq, dim, panel, acc);
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
        const V t = Ops::broadcast(thr + i);
        if constexpr (kAll) {
            masks[i] = store_and_mask(acc[i], t, scores + i * kTopkPanel);
        } else {
            if (!any_above(acc[i], C, t)) continue;
            const std::int64_t h = hits->count;
            const std::uint32_t bits = store_and_mask(acc[i], t, hits->scores + h * kTopkPanel);
            hits->masks[h] = bits;
            hits->rows[h] = row0 + i * row_step;
            hits->count = h + (bits != 0);
        }
    }
}

// The last m < kTileRows queries of a group: tile<m>, chosen at compile time.
template <int R, bool kAll>
TM_TOPK_INLINE void tile_tail(int m, const float* q, std::int64_t ldq, int dim, const float* panel, const float* thr,
                              float* scores, std::uint32_t* masks, Hits* hits, std::int32_t row0,
                              std::int32_t row_step) {
    if constexpr (R > 0) {
        if (m == R)
            tile<R, kAll>(q, ldq, dim, panel, thr, scores, masks, hits, row0, row_step);
        else
            tile_tail<R - 1, kAll>(m, q, ldq, dim, panel, thr, scores, masks, hits, row0, row_step);
    }
}

void panel_scores(const float* q, std::int64_t ldq, int m, int dim, const float* panel, const float* thr,
                  float* scores, std::uint32_t* masks) {
    int u = 0;
    for (; u + kTileRows <= m; u += kTileRows)
        tile<kTileRows, true>(q + u * ldq, ldq, dim, panel, thr + u, scores + u * kTopkPanel, masks + u, nullptr, 0,
                              0);
    tile_tail<kTileRows - 1, true>(m - u, q + u * ldq, ldq, dim, panel, thr + u, scores + u * kTopkPanel, masks + u,
                                   nullptr, 0, 0);
}

// block_scores' tile where the register file holds two panels' rows for enough queries
// (AVX-512, 32 registers: 6 queries x 4 vectors + 4 panel vectors + 1 broadcast): 6 + 4
// loads per 24 FMAs instead of 12 + 2 (in L1 the loads, not the FMAs, are what keeps the
// 12 x 32 tile below the FMA peak).  Panels i and i + 1 (at panel + ps), hit rows row0 +
// i * row_step and that + 1; the same FMAs in the same order per score.  0 = not used.
constexpr int kPairRows = L >= 16 ? 6 : 0;

template <int M>
TM_TOPK_INLINE void pair_tile(const float* q, std::int64_t ldq, int dim, const float* panel, std::int64_t ps,
                              const float* thr, Hits* hits, std::int32_t row0, std::int32_t row_step) {
    V acc[M][2 * C];
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 32
        for (int c = 0; c < 2 * C; ++c) acc[i][c] = Ops::zero();
    const float* p = panel;
#pragma GCC unroll 4
    for (int k = 0; k < dim; ++k, p += kTopkPanel) {
        V pv[2 * C];
#pragma GCC unroll 32
        for (int c = 0; c < 2 * C; ++c) pv[c] = Ops::load(p + (c / C) * ps + L * (c % C));
#pragma GCC unroll 16
        for (int i = 0; i < M; ++i) {
            const V a = Ops::broadcast(q + i * ldq + k);
#pragma GCC unroll 32
            for (int c = 0; c < 2 * C; ++c) acc[i][c] = Ops::fma(a, pv[c], acc[i][c]);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
        const V t = Ops::broadcast(thr + i);
        if (!any_above(acc[i], 2 * C, t)) continue;
#pragma GCC unroll 2
        for (int j = 0; j < 2; ++j) {  // panel i, then i + 1: each query's hits stay in order
            const std::int64_t h = hits->count;
            const std::uint32_t bits = store_and_mask(acc[i] + j * C, t, hits->scores + h * kTopkPanel);
            hits->masks[h] = bits;
            hits->rows[h] = row0 + i * row_step + j;
            hits->count = h + (bits != 0);
        }
    }
}

template <int R>
TM_TOPK_INLINE void pair_tile_tail(int m, const float* q, std::int64_t ldq, int dim, const float* panel,
                                   std::int64_t ps, const float* thr, Hits* hits, std::int32_t row0,
                                   std::int32_t row_step) {
    if constexpr (R > 0) {
        if (m == R)
            pair_tile<R>(q, ldq, dim, panel, ps, thr, hits, row0, row_step);
        else
            pair_tile_tail<R - 1>(m, q, ldq, dim, panel, ps, thr, hits, row0, row_step);
    }
}

// Queries [u, end) of a group x panels i (and i + 1 with `pair`), in block_scores' tiles.
TM_TOPK_INLINE void group_x_panels(const float* q, std::int64_t ldq, int u, int end, int dim, const float* panel,
                                   std::int64_t ps, bool pair, const float* thr, Hits* hits, std::int32_t i,
                                   std::int32_t n) {
    if constexpr (kPairRows > 0) {
        if (pair) {
            for (; u + kPairRows <= end; u += kPairRows)
                pair_tile<kPairRows>(q + u * ldq, ldq, dim, panel, ps, thr + u, hits, u * n + i, n);
            pair_tile_tail<kPairRows - 1>(end - u, q + u * ldq, ldq, dim, panel, ps, thr + u, hits, u * n + i, n);
            return;
        }
    }
    for (; u + kTileRows <= end; u += kTileRows)
        tile<kTileRows, false>(q + u * ldq, ldq, dim, panel, thr + u, nullptr, nullptr, hits, u * n + i, n);
    tile_tail<kTileRows - 1, false>(end - u, q + u * ldq, ldq, dim, panel, thr + u, nullptr, nullptr, hits, u * n + i,
                                    n);
}

// A group of queries whose rows stay in L1 (kGroupBytes of them) meets every panel of the
// chunk (which stays in L2) before the next group; hits are appended in that order, so
// each query's hits come in ascending panel order.
std::int64_t block_scores(const float* q, std::int64_t ldq, int m, int dim, const float* panels,
                          std::int64_t n_panels, const float* thr, float* scores, std::int32_t* hit_rows,
                          std::uint32_t* hit_masks) {
    const std::int64_t ps = static_cast<std::int64_t>(dim) * kTopkPanel;
    if (m <= 0 || n_panels <= 0) return 0;
    const auto n = static_cast<std::int32_t>(n_panels);
    const std::int32_t step = kPairRows > 0 ? 2 : 1;  // panels per tile
    const int tile_rows = kPairRows > 0 ? kPairRows : kTileRows;
    // Queries per group: at most kGroupBytes of rows, in equal groups of whole tiles (192
    // queries on AVX-512: 4 x 48, not 60 + 60 + 60 + 12, whose last group would read
    // every panel from L2 for only two tiles).
    const std::int64_t row_bytes = static_cast<std::int64_t>(dim) * sizeof(float) * tile_rows;
    const int most = static_cast<int>(kGroupBytes / row_bytes > 1 ? kGroupBytes / row_bytes : 1) * tile_rows;
    const int n_groups = (m + most - 1) / most;
    const int group = ((m + n_groups - 1) / n_groups + tile_rows - 1) / tile_rows * tile_rows;
    Hits hits{scores, hit_rows, hit_masks, 0};
    for (int g = 0; g < m; g += group) {
        const int end = m - g < group ? m : g + group;
        for (std::int32_t i = 0; i < n; i += step) {
            const bool pair = step == 2 && i + 1 < n;
            group_x_panels(q, ldq, g, end, dim, panels + i * ps, ps, pair, thr, &hits, i, n);
            if (step == 2 && !pair) break;  // the odd last panel, done alone
        }
    }
    return hits.count;
}

// The self-join's tile: M queries x one panel, each score against its row's bar (rthr[i])
// and its column's bar (ct[c]: the bar of the item's own row).  A row with no score above
// either (one min, compare and or per vector, then one test) leaves nothing; any other is
// appended to the hits with both masks.  The scores are tile()'s (tile_scores).
template <int M>
TM_TOPK_INLINE void self_tile(const float* q, std::int64_t ldq, int dim, const float* panel, const float* rthr,
                              const V* ct, SelfHits* hits, std::int32_t row0) {
    V acc[M][C];
    tile_scores<M>(q, ldq, dim, panel, acc);
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
        const V t = Ops::broadcast(rthr + i);
        std::uint32_t any = 0;
#pragma GCC unroll 32
        for (int c = 0; c < C; ++c) any |= Ops::bits(Ops::gt(acc[i][c], Ops::min(t, ct[c])));
        if (__builtin_expect(any == 0, 1)) continue;
        const std::int64_t h = hits->count++;
        std::uint32_t cbits = 0;
#pragma GCC unroll 32
        for (int c = 0; c < C; ++c) cbits |= Ops::bits(Ops::gt(acc[i][c], ct[c])) << (L * c);
        hits->rmasks[h] = store_and_mask(acc[i], t, hits->scores + h * kTopkPanel);
        hits->cmasks[h] = cbits;
        hits->rows[h] = row0 + i;
    }
}

template <int R>
TM_TOPK_INLINE void self_tile_tail(int m, const float* q, std::int64_t ldq, int dim, const float* panel,
                                   const float* rthr, const V* ct, SelfHits* hits, std::int32_t row0) {
    if constexpr (R > 0) {
        if (m == R)
            self_tile<R>(q, ldq, dim, panel, rthr, ct, hits, row0);
        else
            self_tile_tail<R - 1>(m, q, ldq, dim, panel, rthr, ct, hits, row0);
    }
}

std::int64_t self_scores(const float* q, std::int64_t ldq, int m, int dim, const float* panel, const float* rthr,
                         const float* cthr, float* scores, std::int32_t* hit_rows, std::uint32_t* rmasks,
                         std::uint32_t* cmasks) {
    V ct[C];
#pragma GCC unroll 32
    for (int c = 0; c < C; ++c) ct[c] = Ops::load(cthr + L * c);
    SelfHits hits{scores, hit_rows, rmasks, cmasks, 0};
    int u = 0;
    for (; u + kTileRows <= m; u += kTileRows)
        self_tile<kTileRows>(q + u * ldq, ldq, dim, panel, rthr + u, ct, &hits, u);
    self_tile_tail<kTileRows - 1>(m - u, q + u * ldq, ldq, dim, panel, rthr + u, ct, &hits, u);
    return hits.count;
}

// The scan's seed (scan_blocks): n rows of 32 scores, row r at rows[r].
// column_max: out[j] = the largest rows[r][j] (-inf stays -inf).
void column_max(const float* const* rows, std::int64_t n, float* out) {
    V mx[C];
#pragma GCC unroll 32
    for (int c = 0; c < C; ++c) mx[c] = Ops::load(rows[0] + L * c);
    for (std::int64_t r = 1; r < n; ++r)
#pragma GCC unroll 32
        for (int c = 0; c < C; ++c) mx[c] = Ops::max(mx[c], Ops::load(rows[r] + L * c));
#pragma GCC unroll 32
    for (int c = 0; c < C; ++c) Ops::store(out + L * c, mx[c]);
}

// row_masks: bit j of masks[r] is set iff rows[r][j] > thr.
void row_masks(const float* const* rows, std::int64_t n, float thr, std::uint32_t* masks) {
    const V t = Ops::set1(thr);
    for (std::int64_t r = 0; r < n; ++r) {
        std::uint32_t bits = 0;
#pragma GCC unroll 32
        for (int c = 0; c < C; ++c) bits |= Ops::bits(Ops::gt(Ops::load(rows[r] + L * c), t)) << (L * c);
        masks[r] = bits;
    }
}

// One query x G consecutive panels (panel g at panels + g * panel_size).
template <int G>
TM_TOPK_INLINE void query_group(const float* q, int dim, const float* panels, std::int64_t panel_size, V t,
                                float* scores, std::uint32_t* masks) {
    V acc[G][C];
#pragma GCC unroll 16
    for (int g = 0; g < G; ++g)
#pragma GCC unroll 32
        for (int c = 0; c < C; ++c) acc[g][c] = Ops::zero();
    for (int k = 0; k < dim; ++k) {
        const V a = Ops::broadcast(q + k);
#pragma GCC unroll 16
        for (int g = 0; g < G; ++g) {
            const float* p = panels + g * panel_size + k * kTopkPanel;
#pragma GCC unroll 32
            for (int c = 0; c < C; ++c) acc[g][c] = Ops::fma(a, Ops::load(p + L * c), acc[g][c]);
        }
    }
#pragma GCC unroll 16
    for (int g = 0; g < G; ++g) masks[g] = store_and_mask(acc[g], t, scores + g * kTopkPanel);
}

template <int R>
TM_TOPK_INLINE void query_tail(std::int64_t n, const float* q, int dim, const float* panels, std::int64_t panel_size,
                               V t, float* scores, std::uint32_t* masks) {
    if constexpr (R > 0) {
        if (n == R)
            query_group<R>(q, dim, panels, panel_size, t, scores, masks);
        else
            query_tail<R - 1>(n, q, dim, panels, panel_size, t, scores, masks);
    }
}

void query_scores(const float* q, int dim, const float* panels, std::int64_t n_panels, float thr, float* scores,
                  std::uint32_t* masks) {
    const std::int64_t ps = static_cast<std::int64_t>(dim) * kTopkPanel;
    const V t = Ops::set1(thr);
    std::int64_t p = 0;
    for (; p + kQueryGroup <= n_panels; p += kQueryGroup)
        query_group<kQueryGroup>(q, dim, panels + p * ps, ps, t, scores + p * kTopkPanel, masks + p);
    query_tail<kQueryGroup - 1>(n_panels - p, q, dim, panels + p * ps, ps, t, scores + p * kTopkPanel, masks + p);
}

// The pre-filter's bound terms of L items of an int8 panel (their scales at scale[0..L),
// slacks and masses 32 and 64 floats further) against one prepared query (bias, step t,
// l1 qn1, err eqd), from the exact integer sums acc (with the items' +kPrefilterItemBias): x = fl(fl(C)
// t), the scales s, and b = fl(fma(l1, slack, fl(fma(err, mass, floor)))); the bounds are
// fma(x, s, -+b) (topk.cpp proves them).  query_bounds and self_bounds both take them from
// here, so the two pre-filters are one.
TM_TOPK_INLINE void bound_terms(Ops::VI acc, Ops::VI bias, V t, V qn1, V eqd, V floor, const float* scale, V& x,
                                V& s, V& b) {
    s = Ops::load(scale);
    x = Ops::mul(Ops::to_float(Ops::sub_i(acc, bias)), t);
    b = Ops::fma(qn1, Ops::load(scale + kTopkPanel), Ops::fma(eqd, Ops::load(scale + 2 * kTopkPanel), floor));
}

// The pre-filters' exact integer sums for A (query, panel) pairs in a register tile: pair a
// meets the int8 panel at panel + a * pstride with the query whose quad q is at
// w[a * wstride + q * ldw] (one query x A panels: pstride the panel size, wstride 0, ldw
// 1; A rows x one panel: pstride 0, wstride 1, ldw the rows' stride); eight factors per
// step (Ops::dot8_u8: the items' bytes are at most 127), four for an odd last quad.
template <int A>
TM_TOPK_INLINE void int8_sums(Ops::VI (&acc)[A][C], const std::uint8_t* panel, std::int64_t pstride,
                              const std::int32_t* w, int wstride, int ldw, int quads) {
#pragma GCC unroll 16
    for (int a = 0; a < A; ++a)
#pragma GCC unroll 32
        for (int c = 0; c < C; ++c) acc[a][c] = Ops::zero_i();
    int k = 0;
    for (; k + 2 <= quads; k += 2) {  // two rows of four factors at a time
#pragma GCC unroll 16
        for (int a = 0; a < A; ++a) {
            const std::uint8_t* p = panel + a * pstride + k * 4 * kTopkPanel;
            const std::int32_t* wa = w + a * wstride + k * ldw;
#pragma GCC unroll 32
            for (int c = 0; c < C; ++c) acc[a][c] = Ops::dot8_u8(acc[a][c], p + 4 * L * c, 4 * kTopkPanel, wa, ldw);
        }
    }
    if (k < quads) {
#pragma GCC unroll 16
        for (int a = 0; a < A; ++a) {
            const std::uint8_t* p = panel + a * pstride + k * 4 * kTopkPanel;
            const std::int32_t* wa = w + a * wstride + k * ldw;
#pragma GCC unroll 32
            for (int c = 0; c < C; ++c) acc[a][c] = Ops::dot4_u8(acc[a][c], p + 4 * L * c, wa);
        }
    }
}

// One query x G consecutive int8 panels (the pre-filter): exact integer dot products of
// the int8 query with each item's biased uint8 values (eight factors per step,
// Ops::dot8_u8: the items' bytes are at most 127; the bias removed per query), then each
// item's approximate score and its bounds in float, fused operations only (a mul feeding
// an add could be contracted on one path and not on another).
template <int G>
TM_TOPK_INLINE void bounds_group(const std::int32_t* w, int quads, Ops::VI bias, const std::uint8_t* panels,
                                 std::int64_t panel_size, V t, V qn1, V eqd, V floor, V bar, float* lo, float* hi,
                                 std::uint32_t* masks) {
    Ops::VI acc[G][C];
    int8_sums<G>(acc, panels, panel_size, w, 0, 1, quads);
#pragma GCC unroll 16
    for (int g = 0; g < G; ++g) {
        const float* scale = reinterpret_cast<const float*>(panels + g * panel_size + quads * 4 * kTopkPanel);
        std::uint32_t bits = 0;
#pragma GCC unroll 32
        for (int c = 0; c < C; ++c) {
            const int e = g * kTopkPanel + L * c;
            V x, s, b;
            bound_terms(acc[g][c], bias, t, qn1, eqd, floor, scale + L * c, x, s, b);
            const V h = Ops::fma(x, s, b);
            Ops::store(lo + e, Ops::fma(x, s, Ops::sub(Ops::zero(), b)));
            Ops::store(hi + e, h);
            bits |= Ops::bits(Ops::gt(h, bar)) << (L * c);
        }
        masks[g] = bits;
    }
}

template <int R>
TM_TOPK_INLINE void bounds_tail(std::int64_t n, const std::int32_t* w, int quads, Ops::VI bias,
                                const std::uint8_t* panels, std::int64_t panel_size, V t, V qn1, V eqd, V floor,
                                V bar, float* lo, float* hi, std::uint32_t* masks) {
    if constexpr (R > 0) {
        if (n == R)
            bounds_group<R>(w, quads, bias, panels, panel_size, t, qn1, eqd, floor, bar, lo, hi, masks);
        else
            bounds_tail<R - 1>(n, w, quads, bias, panels, panel_size, t, qn1, eqd, floor, bar, lo, hi, masks);
    }
}

void query_bounds(const PrefilterQuery& q, const std::uint8_t* panels8, std::int64_t n_panels, float floor, float thr,
                  float* lo, float* hi, std::uint32_t* masks) {
    const std::int64_t ps = static_cast<std::int64_t>(q.quads) * 4 * kTopkPanel + 3 * 4 * kTopkPanel;
    const Ops::VI b = Ops::set1_i(q.bias);
    const V t = Ops::set1(q.step), n1 = Ops::set1(q.l1), eq = Ops::set1(q.err), fl = Ops::set1(floor),
            bar = Ops::set1(thr);
    std::int64_t p = 0;
    for (; p + kQueryGroup <= n_panels; p += kQueryGroup) {
        const std::int64_t e = p * kTopkPanel;
        bounds_group<kQueryGroup>(q.w, q.quads, b, panels8 + p * ps, ps, t, n1, eq, fl, bar, lo + e, hi + e, masks + p);
    }
    const std::int64_t e = p * kTopkPanel;
    bounds_tail<kQueryGroup - 1>(n_panels - p, q.w, q.quads, b, panels8 + p * ps, ps, t, n1, eq, fl, bar, lo + e,
                                 hi + e, masks + p);
}

// The self-join's pre-filter: M prepared rows x one int8 panel, integer sums by int8_sums
// (the panel's quad row loaded once for the M rows), then each score's upper
// bound against min(row bar, column bar).  kBoundRows rows per tile: the M x C int32
// accumulators plus the C panel vectors fill the register file (AVX-512: 12 x 2 + 2;
// AVX2: 2 x 4 + 4, with the broadcast, the pairs and the constant 1s).
constexpr int kBoundRows = L >= 16 ? 12 : L >= 8 ? 2 : 1;
/** Whether the self-join takes the pre-filter by default (TopkKernels::self_prefilter),
 *  from A/B runs of both in one process on the Xeon of bench/README.md (26,744 x 64,
 *  top-10; bench/selfjoin_ab.py): AVX2 yes (0.537 -> 0.424 CPU s at one thread, 0.309 ->
 *  0.260 s at two); AVX-512 no (0.351 vs 0.340 CPU s, 0.211 vs 0.216 s, within noise: its
 *  FMA tile does 32 products per instruction on two ports, the int8 scan 64 per 1.5
 *  multiply instructions, plus the bounds and the exact re-scoring); AVX-512 VNNI yes (one
 *  vpdpbusd per 64 products: 0.367 -> 0.302 CPU s at one thread, 0.220 -> 0.185 s at two);
 *  scalar no (36.7 vs 40.5 CPU s: libm's fmaf is the hardware FMA there, no dearer than
 *  the integer products it would replace). */
constexpr bool kSelfPrefilter = L == 8 || Ops::kFusedInt8Dot;
/** Whether the batch scan (users x items) takes the pre-filter by default
 *  (TopkKernels::user_prefilter): every SIMD path, from A/B runs of both alternated in one
 *  process on the Xeon of bench/README.md (bench/topk_prefilter.py: top-10 for all 138,493
 *  x 26,744 users, 64 factors, seen items filtered, one thread, best of 3;
 *  results/topk_userq8_ab_1t.json): AVX-512 VNNI 2.97 -> 1.94 CPU s (2 vpdpbusd per 16
 *  items x 8 factors against 8 FMAs), AVX-512 2.92 -> 2.57 (3 multiply instructions on one
 *  port against 8 FMAs on two, but a quarter of the bytes), AVX2 4.82 -> 3.58 (3 multiply
 *  instructions per 8 items x 8 factors against 8 FMAs).  Scalar no: 11.3-11.6 vs 12.6 CPU s
 *  at 3% of the users (libm's fmaf is the hardware FMA there). */
constexpr bool kUserPrefilter = L >= 8;

template <int M>
TM_TOPK_INLINE void self_bounds_tile(const PrefilterQuery* rows, const std::int32_t* w, int ldw,
                                     const std::uint8_t* panel, int quads, V floor, const float* rthr, const V* ct,
                                     std::uint32_t* masks) {
    Ops::VI acc[M][C];
    int8_sums<M>(acc, panel, 0, w, 1, ldw, quads);
    const float* scale = reinterpret_cast<const float*>(panel + quads * 4 * kTopkPanel);
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
        const PrefilterQuery& q = rows[i];
        const Ops::VI bias = Ops::set1_i(q.bias);
        const V t = Ops::set1(q.step), qn1 = Ops::set1(q.l1), eqd = Ops::set1(q.err), rt = Ops::broadcast(rthr + i);
        std::uint32_t bits = 0;
#pragma GCC unroll 32
        for (int c = 0; c < C; ++c) {
            V x, s, b;
            bound_terms(acc[i][c], bias, t, qn1, eqd, floor, scale + L * c, x, s, b);
            bits |= Ops::bits(Ops::gt(Ops::fma(x, s, b), Ops::min(rt, ct[c]))) << (L * c);
        }
        masks[i] = bits;
    }
}

template <int R>
TM_TOPK_INLINE void self_bounds_tail(int m, const PrefilterQuery* rows, const std::int32_t* w, int ldw,
                                     const std::uint8_t* panel, int quads, V floor, const float* rthr, const V* ct,
                                     std::uint32_t* masks) {
    if constexpr (R > 0) {
        if (m == R)
            self_bounds_tile<R>(rows, w, ldw, panel, quads, floor, rthr, ct, masks);
        else
            self_bounds_tail<R - 1>(m, rows, w, ldw, panel, quads, floor, rthr, ct, masks);
    }
}

void self_bounds(const PrefilterQuery* rows, const std::int32_t* w, int ldw, int m, const std::uint8_t* panel8,
                 float floor, const float* rthr, const float* cthr, std::uint32_t* masks) {
    if (m <= 0) return;
    const int quads = rows[0].quads;
    V ct[C];
#pragma GCC unroll 32
    for (int c = 0; c < C; ++c) ct[c] = Ops::load(cthr + L * c);
    const V fl = Ops::set1(floor);
    int u = 0;
    for (; u + kBoundRows <= m; u += kBoundRows)
        self_bounds_tile<kBoundRows>(rows + u, w + u, ldw, panel8, quads, fl, rthr + u, ct, masks + u);
    self_bounds_tail<kBoundRows - 1>(m - u, rows + u, w + u, ldw, panel8, quads, fl, rthr + u, ct, masks + u);
}

// The exact scores of single (row, column) pairs, a row of xa and a row of xb (the
// pre-filters re-score rows with a few candidates this way, not as whole panel rows: the
// self-join with xa == xb, the batch scan with users and items): the same fma
// chain as every tile (one rounding per factor, factors in order, from 0).  L pairs at a
// time, one per lane: L factors of each pair's two rows loaded and transposed in
// registers (Ops::transpose), then L fmas; about 2 loads and 2 L x L transposes per L
// factors of L pairs (a scalar chain per pair took ~2.5 loads per fma: ~100 cycles per
// pair at 64 factors).  A last group of fewer than L pairs repeats its first pair in the
// unused lanes.
void pair_scores(const float* xa, const float* xb, int dim, const std::int32_t* a, const std::int32_t* b,
                 std::int64_t n, float* out) {
    for (std::int64_t e0 = 0; e0 < n; e0 += L) {
        const int cnt = n - e0 < L ? static_cast<int>(n - e0) : L;
        const float* pa[L];
        const float* pb[L];
        for (int l = 0; l < L; ++l) {
            const std::int64_t e = e0 + (l < cnt ? l : 0);
            pa[l] = xa + static_cast<std::int64_t>(a[e]) * dim;
            pb[l] = xb + static_cast<std::int64_t>(b[e]) * dim;
        }
        V acc = Ops::zero();
        for (int k0 = 0; k0 < dim; k0 += L) {
            const int w = dim - k0 < L ? dim - k0 : L;
            V ra[L], rb[L];
            for (int l = 0; l < L; ++l) {
                ra[l] = w == L ? Ops::load(pa[l] + k0) : Ops::load_n(pa[l] + k0, w);
                rb[l] = w == L ? Ops::load(pb[l] + k0) : Ops::load_n(pb[l] + k0, w);
            }
            Ops::transpose(ra);  // ra[k]: factor k0 + k of every pair
            Ops::transpose(rb);
            for (int k = 0; k < w; ++k) acc = Ops::fma(ra[k], rb[k], acc);
        }
        alignas(64) float s[L];
        Ops::store(s, acc);
        for (int l = 0; l < cnt; ++l) out[e0 + l] = s[l];
    }
}

// Finiteness without a float-max constant: x - x is +0 for every finite x and NaN for
// NaN and +-inf, and a NaN stays NaN through the sum, so the values are all finite iff
// the sum of (x - x) is exactly zero.
float finite_absmax(const float* x, std::int64_t n) {
    V m0 = Ops::zero(), m1 = Ops::zero(), z0 = Ops::zero(), z1 = Ops::zero();
    std::int64_t i = 0;
    for (; i + 2 * L <= n; i += 2 * L) {
        const V a = Ops::load(x + i), b = Ops::load(x + i + L);
        m0 = Ops::max(m0, Ops::abs(a));
        m1 = Ops::max(m1, Ops::abs(b));
        z0 = Ops::add(z0, Ops::sub(a, a));
        z1 = Ops::add(z1, Ops::sub(b, b));
    }
    for (; i < n; i += L) {
        const int rem = n - i < L ? static_cast<int>(n - i) : L;
        const V a = Ops::load_n(x + i, rem);  // zero past the end: finite, |0| = 0
        m0 = Ops::max(m0, Ops::abs(a));
        z0 = Ops::add(z0, Ops::sub(a, a));
    }
    if (!(Ops::reduce_add(Ops::add(z0, z1)) == 0.0f)) return INFINITY;
    return Ops::reduce_max(Ops::max(m0, m1));
}

// Blocks of L items x L factors: L rows loaded (zero for items past `count`, factors past
// dim masked), transposed in registers, stored as L rows of the panel.
void pack_panel(const float* items, const std::int32_t* ids, std::int64_t first, int count, int dim, float* dst) {
    for (int g = 0; g < C; ++g) {
        const float* rows[L];
        for (int i = 0; i < L; ++i) {
            const int j = g * L + i;
            rows[i] = j < count ? items + (ids ? static_cast<std::int64_t>(ids[first + j]) : first + j) * dim
                                : nullptr;
        }
        for (int d0 = 0; d0 < dim; d0 += L) {
            const int w = dim - d0 < L ? dim - d0 : L;
            V r[L];
            for (int i = 0; i < L; ++i)
                r[i] = rows[i] == nullptr ? Ops::zero() : w == L ? Ops::load(rows[i] + d0) : Ops::load_n(rows[i] + d0, w);
            Ops::transpose(r);
            for (int i = 0; i < w; ++i) Ops::store(dst + static_cast<std::int64_t>(d0 + i) * kTopkPanel + g * L, r[i]);
        }
    }
}

/** This path's table (topk_<isa>.cpp defines topk_kernels_<isa> from it). */
constexpr TopkKernels table() {
    TopkKernels t{};
    t.panel_scores = panel_scores;
    t.block_scores = block_scores;
    t.self_scores = self_scores;
    t.column_max = column_max;
    t.row_masks = row_masks;
    t.query_scores = query_scores;
    t.query_bounds = query_bounds;
    t.self_bounds = self_bounds;
    t.pair_scores = pair_scores;
    t.pack_panel = pack_panel;
    t.finite_absmax = finite_absmax;
    t.query_block = kQueryBlock;
    t.self_prefilter = kSelfPrefilter;
    t.user_prefilter = kUserPrefilter;
    return t;
}

}  // namespace topk
}  // namespace tastemaker::kernels::TM_KERNEL_NS
