#pragma once
/** Exact top-k by inner product, for one query or a batch, with per-query exclusions.
 *
 *  Scores are `queries[q] . items[i]`, each accumulated in float32 with one fused
 *  multiply-add per factor in increasing factor order, so every SIMD path (and the
 *  scalar one, which uses std::fma) computes bit-identical scores and therefore
 *  identical rankings.  Cosine similarity is this kernel on L2-normalized rows.
 *
 *  The full queries x items score matrix is never materialized: queries are taken in
 *  blocks, items in 32-wide panels (d x 32, packed once per call for large batches) read
 *  in chunks, and each query keeps a running threshold (its k-th best score so far); the
 *  kernel compares every score with it in registers, and only items above it leave the
 *  registers, are checked against the exclusions and enter a k-element heap.
 *
 *  Self-join shortcut (similar_items for every item): when `queries` and `items` are the
 *  same pointer, every row excludes exactly itself and there is no allow-list, each
 *  pair is scored once and offered to both rows (scores are symmetric bit for bit), on
 *  every path (self_scores); results are identical to the general scan.  It
 *  keeps per-thread heaps for all rows, so it is skipped when they would pass 1 GiB.
 *  Where the path's integer multiplies are cheap (TopkKernels::self_prefilter: AVX2,
 *  AVX-512 VNNI) it first bounds every pair's score from PackedItems' int8 copy
 *  (self_bounds, query_bounds' proven bounds) and scores exactly only the rows whose bound reaches a
 *  bar: the same offers, so the same results, bit for bit.
 *
 *  Batch pre-filter (users x items; TopkKernels::user_prefilter: the SIMD paths): past a block's
 *  first chunk, scored in float32 to raise the bars, each panel's int8 copy bounds every
 *  (user, item) pair the same way (self_bounds, no column bars), and only the pairs whose
 *  bound passes the user's bar are scored exactly (pair_scores, or a panel_scores row) and
 *  offered: the same offers, so the same results, bit for bit.
 */
#include <cstddef>
#include <cstdint>
#include <memory>
#include <tuple>

#include "tastemaker/simd.hpp"

namespace tastemaker {

/** Width of one item panel (items scored together per query). */
constexpr int kTopkPanel = 32;

/** Largest dim with an int8 pre-filter (PackedItems): its error bound assumes dim * 2^-24
 *  is small (the float32 rounding terms are charged at (3 dim + 8) 2^-24 per unit). */
constexpr int kPrefilterMaxDim = 4096;

/** A query prepared for the pre-filter's scan (TopkKernels::query_bounds): its values
 *  quantised to int8, q_k ~ step * qi_k with |qi_k| <= kPrefilterQueryMax, four to an
 *  int32: w[m] holds qi_{4m + h} in byte h (bits 8h..8h+7), 0 past dim; `bias` =
 *  kPrefilterItemBias * sum_k qi_k (the items are stored as Q + kPrefilterItemBias); `l1` >= ||q||_1 and `err` >=
 *  max_k |q_k - step * qi_k| (1 + 2^-20) (both rounded up). */
struct PrefilterQuery {
    const std::int32_t* w = nullptr;
    int quads = 0;
    std::int32_t bias = 0;
    float step = 0.0f;
    float l1 = 0.0f;
    float err = 0.0f;
};

/** Largest |int8 value| of a prepared query, and of an item's int8 value (PackedItems),
 *  which is stored as Q + kPrefilterItemBias in [1, 127]: the scan adds the uint8 x int8
 *  products of eight factors (two rows of four) in int16 lanes, four products per lane,
 *  4 * 127 * 64 < 2^15, so its integer sums are exact (and take one int16-to-int32 step
 *  per eight factors instead of per four: a quarter fewer multiply instructions than 8-bit
 *  items, for twice their quantisation error). */
constexpr int kPrefilterQueryMax = 64;
constexpr int kPrefilterItemMax = 63;
constexpr int kPrefilterItemBias = 64;

/** Prepares one query (dim floats, finite) for TopkKernels::query_bounds: w receives
 *  (dim + 3) / 4 int32, `out` points at it.  Returns false (out unset) when the
 *  query's bound terms would not be finite float32 values (a query near the overflow
 *  bound): the single-query scan then runs exactly. */
bool prefilter_query(const float* q, int dim, std::int32_t* w, PrefilterQuery& out);

/** Bound on dim * max|query| * max|item| (a bound on every partial sum of every score):
 *  below float32's max (3.4e38) with a margin, so that no score or partial sum overflows. */
constexpr double kTopkScoreBound = 1e37;

/** Item factors packed once for repeated queries: what topk_inner_product otherwise
 *  packs on every call (n_items x dim row-major -> ceil(n_items / 32) panels of dim x 32,
 *  row-major, zero past the last item), plus the validation of the values, so that a
 *  single query reads the panels and nothing else.
 *
 *  Built from the items once (the values are copied; the pointer is not retained) and
 *  immutable afterwards: any number of threads may pass the same object to concurrent
 *  calls.  It costs a second copy of the item factors (n_items rounded up to 32, times
 *  dim floats, 64-byte aligned).  The layout does not depend on the SIMD path.
 *
 *  The single-query pre-filter (dim <= kPrefilterMaxDim): an int8 copy of the panels,
 *  y_ik ~ scale_i * Q_ik with scale_i = max_k |y_ik| / kPrefilterItemMax and Q_ik = round(y_ik /
 *  scale_i), plus per item its scale and its bound coefficient slack_i, and one
 *  absolute term slack_floor.  TopkKernels::query_bounds turns a query (quantised to
 *  int8) into bounds lo_i <= s_i <= hi_i of the exact path's float32 score s_i of every
 *  item (topk.cpp proves them), so a single query can discard every item whose upper
 *  bound is below the k-th largest lower bound and re-score only the rest exactly: its
 *  results are the exact scan's, bit for bit.  Extra memory: n_items rounded up to 32,
 *  times (dim rounded up to a multiple of 4, + 12) bytes -- a quarter of the float32 panels plus
 *  12 bytes per item (2.0 MB for 26,744 items x 64 factors, beside 6.8 MB of float32 panels).
 *
 *  @throws std::invalid_argument ("items: ...") on a negative or too large n_items
 *          (> 2^31 - 1), dim < 1, a null pointer with n_items > 0, or NaN/inf values.
 */
class PackedItems {
public:
    PackedItems(const float* items, std::int64_t n_items, int dim, int num_threads = 0);

    std::int64_t n_items() const noexcept { return n_items_; }
    int dim() const noexcept { return dim_; }
    /** max |item value| (the overflow check of every query uses it). */
    float absmax() const noexcept { return absmax_; }
    std::int64_t n_panels() const noexcept { return n_panels_; }
    /** Panel p (p < n_panels()): dim x 32 floats, row-major. */
    const float* panel(std::int64_t p) const noexcept { return panels_.get() + p * dim_ * kTopkPanel; }
    /** Whether the int8 pre-filter copy exists (dim <= kPrefilterMaxDim, n_items > 0). */
    bool has_prefilter() const noexcept { return prefilter_ != nullptr; }
    /** Rows of four factors of the int8 copy: ceil(dim / 4). */
    int quads() const noexcept { return (dim_ + 3) / 4; }
    /** Bytes of one panel of the int8 copy: its values, then its items' scales and slacks
     *  (one stream for the scan). */
    std::int64_t panel8_bytes() const noexcept { return std::int64_t{quads()} * 4 * kTopkPanel + 3 * 4 * kTopkPanel; }
    /** Panel p of the int8 copy (has_prefilter() only, 64-byte aligned): quads() rows of
     *  128 bytes, row m holding Q[item][4m + h] + kPrefilterItemBias (h = 0..3, as uint8) for the panel's
     *  items 0..31 in turn (Q = 0 past dim and past the last item); then 32 floats each
     *  of scale_i, slack_i and mass_i >= scale_i * sum_k |Q_ik| (0 past the last item). */
    const std::uint8_t* panel8(std::int64_t p) const noexcept {
        return reinterpret_cast<const std::uint8_t*>(prefilter_.get()) + p * panel8_bytes();
    }
    /** The absolute term of every bound (covers float32 underflow; a normal float, so no
     *  operand of the scan is subnormal). */
    float slack_floor() const noexcept { return slack_floor_; }
    /** Bytes of the float32 panels, and of the int8 pre-filter copy with its per-item floats. */
    std::size_t bytes() const noexcept {
        return static_cast<std::size_t>(n_panels_) * static_cast<std::size_t>(dim_) * kTopkPanel * sizeof(float);
    }
    std::size_t prefilter_bytes() const noexcept {
        return has_prefilter() ? static_cast<std::size_t>(n_panels_ * panel8_bytes()) : 0;
    }

private:
    struct Free {
        void operator()(float* p) const noexcept;
    };
    void build_prefilter(const float* items, int num_threads);
    std::unique_ptr<float[], Free> panels_;
    std::unique_ptr<float[], Free> prefilter_;  // the int8 panels (panel8)
    float slack_floor_ = 0.0f;
    std::int64_t n_items_ = 0;
    std::int64_t n_panels_ = 0;
    int dim_ = 0;
    float absmax_ = 0.0f;
};

/** Work counters of one topk_inner_product call (TopkRequest::stats; added to, not reset):
 *  how many (query, item) pairs the batch scan (users x items) bounded from the int8 copy,
 *  and how many it scored in float32 -- every pair of a panel it scanned with the float32
 *  tile, plus the pre-filter's re-scored pairs (single pairs, and 32 per re-scored tile
 *  row).  The single-query path and the self-join do not count (they add nothing). */
struct TopkStats {
    std::int64_t bounded = 0;      // pairs bounded by the int8 scan (self_bounds)
    std::int64_t exact = 0;        // pairs scored in float32, in all
    std::int64_t single = 0;       // of those, the pre-filter's single pairs (pair_scores)
    std::int64_t tile_rows = 0;    // the pre-filter's re-scored tile rows (32 pairs each)

    TopkStats& operator+=(const TopkStats& o) noexcept {
        bounded += o.bounded;
        exact += o.exact;
        single += o.single;
        tile_rows += o.tile_rows;
        return *this;
    }
};

/** One top-k request.  All pointers are borrowed; nothing is retained after the call.
 *
 *  @param queries   n_queries x dim, row-major float32.
 *  @param items     n_items x dim, row-major float32.
 *  @param k         results per query (>= 0).
 *  @param exclude_indptr, exclude_indices
 *                   optional CSR with n_queries rows (indptr int64 of n_queries + 1,
 *                   starting at 0; indices int32, each row sorted ascending): item ids
 *                   never returned for that query (already-seen items).  Ids outside
 *                   [0, n_items) are ignored.  Both null = no per-query exclusions.
 *  @param allow     optional allow-list (any order, duplicates allowed, all in
 *                   [0, n_items)); null = every item is a candidate.
 *  @param deny      optional deny-list (any order, all in [0, n_items)).
 *  @param num_threads  OpenMP threads (0 = tastemaker::get_num_threads()).
 *
 *  Queries and items must be finite and small enough that no score can overflow:
 *  dim * max|queries| * max|items| <= kTopkScoreBound (checked, std::invalid_argument
 *  otherwise), so every score and partial sum is finite.
 */
struct TopkRequest {
    const float* queries = nullptr;
    std::int64_t n_queries = 0;
    const float* items = nullptr;
    std::int64_t n_items = 0;
    int dim = 0;
    int k = 0;
    const std::int64_t* exclude_indptr = nullptr;
    const std::int32_t* exclude_indices = nullptr;
    const std::int32_t* allow = nullptr;
    std::int64_t n_allow = 0;
    const std::int32_t* deny = nullptr;
    std::int64_t n_deny = 0;
    int num_threads = 0;
    /** Optional: `items` packed by PackedItems (same n_items and dim, checked; the
     *  caller guarantees the same values).  The items are then not validated again and
     *  no call packs them: queries read these panels, unless an allow-list selects a
     *  subset of candidates (then only the candidates are packed, from `items`). */
    const PackedItems* packed = nullptr;
    /** The self-join's int8 pre-filter: -1 = the path's choice (TopkKernels::self_prefilter),
     *  0 = off, 1 = on.  Results are identical either way (tests run both). */
    int self_prefilter = -1;
    /** The batch scan's int8 pre-filter (users x items, more than one query): -1 = the
     *  path's choice (TopkKernels::user_prefilter), 0 = off, 1 = on.  Results are identical
     *  either way (tests run both). */
    int user_prefilter = -1;
    /** Optional: what the call did, added to these counters (see TopkStats). */
    TopkStats* stats = nullptr;
};


/** Run the request on the active SIMD path.
 *
 *  A single query (n_queries == 1) runs on the calling thread with no parallel region
 *  and no block set-up: one pass over the panels, `TopkKernels::query_scores` scoring
 *  several panels at a time.  Larger batches go in blocks of queries over OpenMP.
 *
 *  Writes `out_ids` and `out_scores` (n_queries x k, row-major): row q holds the
 *  min(k, eligible_q) best items by score descending, ties broken by lower id, then
 *  padding id -1 / score -inf.  Returns nothing; never throws from inside the parallel
 *  region.  Thread-safe (concurrent calls share no state).
 *  @throws std::invalid_argument on bad shapes, negative sizes, NaN/inf or overflowing
 *          values ("queries: ..." / "items: ..."), a malformed exclusion
 *          CSR (indptr not starting at 0 / decreasing, unsorted row) or allow/deny ids
 *          out of range.
 */
void topk_inner_product(const TopkRequest& request, std::int32_t* out_ids, float* out_scores);

/** Per-instruction-set building blocks (one table per path, see simd.hpp), all from one
 *  source (cpp/src/kernels/topk-inl.hpp) compiled once per instruction set: every path's
 *  own table has every entry.  Scores are bit-identical on every path: one fused
 *  multiply-add per factor, factors in increasing order, starting from 0 (std::fma on the
 *  scalar path).  A "panel" is 32 items x dim factors stored dim x 32, row-major. */
struct TopkKernels {
    /** For u < m:  scores[u*32 + j] = sum_k q[u*ldq + k] * panel[k*32 + j]  (fma, k
     *  ascending, starting from 0), and bit j of masks[u] is set iff that score is
     *  greater than thr[u].  panel is dim x 32, row-major.  m <= kTopkMaxBlock. */
    void (*panel_scores)(const float* q, std::int64_t ldq, int m, int dim, const float* panel,
                         const float* thr, float* scores, std::uint32_t* masks) = nullptr;
    /** m queries (m <= kTopkMaxBlock) against n_panels consecutive panels (panel i at
     *  panels + i*dim*32), the same scores (same bits) as panel_scores; only what a scan
     *  needs is written: the (query u, panel i) pairs with a score above thr[u] ("hits").
     *  Returns the number of hits h; hit e < h is pair hit_rows[e] = u*n_panels + i, with
     *  mask hit_masks[e] (bit j set iff score(u, i*32 + j) > thr[u]; never 0) and that
     *  pair's 32 scores at scores[e*32 ...].  Each query's hits come in ascending panel
     *  order.  Capacity: m*n_panels + 1 entries in each array (a pair is written at the
     *  next free slot before it is known to be a hit).  Queries go in groups whose rows
     *  stay in L1 while the panels (a few hundred KB: L2) are read once per group. */
    std::int64_t (*block_scores)(const float* q, std::int64_t ldq, int m, int dim, const float* panels,
                                 std::int64_t n_panels, const float* thr, float* scores, std::int32_t* hit_rows,
                                 std::uint32_t* hit_masks) = nullptr;
    /** max_i |x[i]| over n floats (0 for n == 0); +inf if any value is NaN or inf. */
    float (*finite_absmax)(const float* x, std::int64_t n) = nullptr;
    /** Write the panel of items ids[first + j] (or first + j when ids is null), j < count
     *  <= 32, rows of `dim` floats in `items`, as dim x 32 row-major into dst, zero in
     *  columns j >= count.  Reads only those rows. */
    void (*pack_panel)(const float* items, const std::int32_t* ids, std::int64_t first, int count, int dim,
                       float* dst) = nullptr;
    /** Queries per block (1..kTopkMaxBlock): each packed panel is read from L3 once per
     *  block, the block's query rows are reused from L1/L2 for every panel. */
    int query_block = 48;
    /** Whether the self-join takes the int8 pre-filter (self_bounds, then self_scores on the
     *  rows that pass) on this path by default, rather than self_scores on every row: where
     *  the int8 products are cheaper than the float32 ones (AVX2: two multiply
     *  instructions per 8 items x 8 factors against eight FMAs; AVX-512 VNNI: one vpdpbusd
     *  per 64 products), not where the FMA pipes are wider than the integer multiplier
     *  (AVX-512 without VNNI; measured A/B: bench/README.md, bench/selfjoin_ab.py).  Both give
     *  the same results; TopkRequest::self_prefilter overrides it. */
    bool self_prefilter = true;
    /** Whether the batch scan (users x items) takes the int8 pre-filter on this path by
     *  default: after a block's first chunk (scored in float32, which raises the bars), each
     *  panel is bounded for the whole block by self_bounds (no column bars) and only the
     *  (user, item) pairs whose bound passes the user's bar are scored exactly (pair_scores,
     *  or a panel_scores row).  The same offers pass, so the same results, bit for bit;
     *  TopkRequest::user_prefilter overrides it.  Set by measurement (bench/README.md). */
    bool user_prefilter = false;
    /** The self-join's scan of m queries (m <= kTopkMaxBlock) x one panel: the same scores
     *  (same bits) as panel_scores, each against its row's bar rthr[u] and its column's
     *  bar cthr[j] (the bar of the item's own row).  Only the rows with a score above either
     *  are written, in ascending u: returns their number h; hit e < h is row hit_rows[e],
     *  its 32 scores at scores[e*32 ...], rmasks[e] (bit j set iff score > rthr[u]) and
     *  cmasks[e] (bit j set iff score > cthr[j]), never both 0.  Capacity: m entries in
     *  each array.  No NaN in rthr or cthr. */
    std::int64_t (*self_scores)(const float* q, std::int64_t ldq, int m, int dim, const float* panel,
                                const float* rthr, const float* cthr, float* scores, std::int32_t* hit_rows,
                                std::uint32_t* rmasks, std::uint32_t* cmasks) = nullptr;
    /** For j < 32: out[j] = max over r < n of rows[r][j] (n >= 1, each row 32 floats; -inf
     *  allowed, no NaN).  With row_masks, the scan's seed of each query's bar. */
    void (*column_max)(const float* const* rows, std::int64_t n, float* out) = nullptr;
    /** For r < n: bit j of masks[r] is set iff rows[r][j] > thr. */
    void (*row_masks)(const float* const* rows, std::int64_t n, float thr, std::uint32_t* masks) = nullptr;
    /** One query against n_panels consecutive panels (panel p at panels + p*dim*32):
     *  scores[p*32 + j] = sum_k q[k] * panel_p[k*32 + j] (fma, k ascending, from 0; the
     *  same bits as panel_scores), and bit j of masks[p] is set iff that score > thr. */
    void (*query_scores)(const float* q, int dim, const float* panels, std::int64_t n_panels, float thr,
                         float* scores, std::uint32_t* masks) = nullptr;

    /** The pre-filter's scan (PackedItems' int8 copy): one query against n_panels
     *  consecutive int8 panels (panel p at panels8 + p * (128 q.quads + 384), layout,
     *  scale, slack and mass as PackedItems::panel8).  For item j of panel p (e = p*32 + j),
     *  with Q its int8 values and qi the query's int8 values (q.w):
     *      C = sum_k qi_k Q_k = sum_k qi_k (Q_k + kPrefilterItemBias) - q.bias   (exact, in int32)
     *      x = fl(fl(C) * q.step)
     *      b = fl(fma(q.l1, slack[e], fl(fma(q.err, mass[e], floor))))
     *  lo[e] = fl(fma(x, scale[e], -b)), hi[e] = fl(fma(x, scale[e], b)), and bit j of
     *  masks[p] is set iff hi[e] > thr.  Bit-identical on every path. */
    void (*query_bounds)(const PrefilterQuery& q, const std::uint8_t* panels8, std::int64_t n_panels, float floor,
                         float thr, float* lo, float* hi, std::uint32_t* masks) = nullptr;

    /** The self-join's pre-filter: m rows prepared by prefilter_query (rows[u], all with
     *  the same quads) against one panel of PackedItems' int8 copy (panel8, layout as
     *  PackedItems::panel8, its slack_floor as `floor`): bit j of masks[u] is set iff
     *  hi(u, j) > min(rthr[u], cthr[j]), hi being query_bounds' upper bound of the exact
     *  path's score of row u and item j (the same bits).  So a score above either bar
     *  always has its bit set: only the rows with one need their exact scores
     *  (self_scores).  Bit-identical on every path.  No NaN in rthr or cthr.  The batch
     *  scan's pre-filter passes +inf column bars (only the rows' bars count). */
    void (*self_bounds)(const PrefilterQuery* rows, const std::int32_t* w, int ldw, int m,
                        const std::uint8_t* panel8, float floor, const float* rthr, const float* cthr,
                        std::uint32_t* masks) = nullptr;

    /** For e < n: out[e] = sum_k xa[a[e]*dim + k] * xb[b[e]*dim + k] (fma, k ascending,
     *  from 0: the same bits as panel_scores of row a[e] of xa against a panel holding row
     *  b[e] of xb).  xa and xb are row-major with `dim` floats per row (the same pointer
     *  for the self-join). */
    void (*pair_scores)(const float* xa, const float* xb, int dim, const std::int32_t* a, const std::int32_t* b,
                        std::int64_t n, float* out) = nullptr;

    /** Every function-pointer entry (simd::Dispatch resolves them, the tests check them). */
    static constexpr auto entries() {
        return std::make_tuple(&TopkKernels::panel_scores, &TopkKernels::block_scores, &TopkKernels::finite_absmax,
                               &TopkKernels::pack_panel, &TopkKernels::self_scores, &TopkKernels::query_scores,
                               &TopkKernels::query_bounds, &TopkKernels::self_bounds, &TopkKernels::pair_scores,
                               &TopkKernels::column_max,
                               &TopkKernels::row_masks);
    }
};

/** Upper bound of TopkKernels::query_block. */
constexpr int kTopkMaxBlock = 256;

/** The table for a path, or for the active one (see simd.hpp: never a null entry). */
const TopkKernels& topk_kernels(simd::Isa isa);
const TopkKernels& topk_kernels();
const simd::Dispatch<TopkKernels>& topk_kernels_dispatch();

}  // namespace tastemaker
