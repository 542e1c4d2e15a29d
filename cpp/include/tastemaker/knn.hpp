#pragma once
/** Sparse item-item neighbourhoods: the top-K neighbour build, scoring users from the
 *  neighbour lists, and the dense item Gram matrix (EASE) from the same co-occurrence
 *  pass.
 *
 *  Input matrices are CSR views (row-major, indptr int64 with n_rows + 1 entries starting
 *  at 0, indices int32 sorted ascending and unique within a row, float32 data).  W is
 *  users x items (the weighted interactions: knn_fit applies the cosine, BM25 or TF-IDF
 *  weights and transposes; knn_build and item_gram_dense take them applied) and Wt is its
 *  transpose (items x users).  Callers validate the structure; the kernels check only
 *  sizes and ids.
 *
 *  Co-occurrence score of items i and j:  s_ij = sum_u Wt[i, u] * W[u, j], accumulated in
 *  float32 (build) or float64 (Gram) over the users u of row i of Wt in increasing order,
 *  so s_ij and s_ji are the same sum of the same products in the same order: the scores
 *  are symmetric bit for bit and nothing depends on the thread count.
 *
 *  Threading: OpenMP over item rows (build, Gram) or query rows (scoring) with dynamic
 *  scheduling and per-thread scratch of one dense row (n_items floats + marks).  Every
 *  function is thread-safe for distinct outputs and never throws from a parallel region.
 */
#include <cstdint>
#include <vector>

namespace tastemaker {

/** Borrowed CSR matrix (see the file comment for the layout). */
struct CsrView {
    const std::int64_t* indptr = nullptr;
    const std::int32_t* indices = nullptr;
    const float* data = nullptr;
    std::int64_t n_rows = 0;
    std::int64_t n_cols = 0;
};

/** The transpose of m (m.n_cols x m.n_rows) into t_indptr (m.n_cols + 1 entries),
 *  t_indices and t_data (nnz each), and, unless source is null, source[p] = the position in
 *  m of the transpose's entry p.  A stable counting sort: each row of the transpose lists
 *  m's rows in increasing order (sorted indices, the same arrays as scipy's m.T.tocsr()).
 *  OpenMP over blocks of m's rows, each counting and then placing its own entries; the
 *  result does not depend on the thread count.  Throws std::invalid_argument for a
 *  malformed m (indptr not starting at 0 or decreasing, a column outside [0, n_cols)). */
void csr_transpose(const CsrView& m, std::int64_t* t_indptr, std::int32_t* t_indices, float* t_data,
                   std::int64_t* source, int num_threads = 0);

/** How a neighbour build turns co-occurrence into similarity. */
enum class KnnScore : int {
    /** s_ij (inner product of the weighted columns; cosine when the caller normalized
     *  them, BM25 / TF-IDF with those weights). */
    Dot = 0,
    /** Jaccard of the column supports: c / (n_i + n_j - c), with c the number of users
     *  storing both items and n_i the number of users storing item i.  Stored values are
     *  ignored (each stored entry counts 1). */
    Jaccard = 1,
};

/** A neighbour graph: items x items CSR (row i: the neighbours of item i and their
 *  similarities) plus every item's similarity with itself. */
struct KnnGraph {
    std::vector<std::int64_t> indptr;   ///< n_items + 1
    std::vector<std::int32_t> indices;  ///< neighbour ids
    std::vector<float> data;            ///< similarities (> 0)
    std::vector<float> self;            ///< n_items: s_ii, or 1 for Jaccard of a stored item, else 0
};

/** Top-K neighbours of every item.
 *
 *  For each item i, the neighbours are the items j != i with a positive score, the K
 *  best by (score descending, id ascending).  Row i of the graph holds them in an
 *  unspecified order that depends only on the input, not on the thread count (sorting
 *  them would cost more than the build on sparse catalogs, and scoring does not need
 *  it).
 *
 *  @param W, Wt        users x items and its transpose (items x users); W.n_cols ==
 *                      Wt.n_rows == n_items, W.n_rows == Wt.n_cols.
 *  @param K            neighbours per item, >= 1.
 *  Memory: the graph (12 bytes per neighbour), and per thread 8 bytes per item of
 *  scratch plus its share of the graph before it is gathered (the peak is about twice
 *  the graph).
 *  @throws std::invalid_argument on K < 1 or inconsistent shapes.
 */
KnnGraph knn_build(const CsrView& W, const CsrView& Wt, int K, KnnScore score, int num_threads = 0);

/** How knn_fit weights the users x items matrix before the build. */
enum class KnnSimilarity : int {
    /** Cosine of the item columns: each column divided by its L2 norm. */
    Cosine = 0,
    /** Inner product of BM25-weighted columns, items as the documents and users as the
     *  terms (weighting.hpp, idf_offset 1: implicit's bm25_weight). */
    Bm25 = 1,
    /** Cosine of TF-IDF-weighted columns: sign(x) sqrt(|x|) weighted by tfidf
     *  (idf_offset 1: implicit's tfidf_weight), then as Cosine. */
    TfIdf = 2,
    /** Jaccard of the supports of the positive entries (KnnScore::Jaccard). */
    Jaccard = 3,
};

/** The neighbour graph of a users x items matrix X of raw strengths: its columns
 *  weighted by `similarity` in float64 and rounded to float32 (for TF-IDF before the
 *  norm), then knn_build on them and their transpose.
 *
 *  @param X        users x items CSR (structure validated by the caller; column ids are
 *                  checked here).
 *  @param k1, b    BM25's parameters (k1 >= 0, b in [0, 1]); ignored otherwise.
 *  Memory: the transpose of X and a float64 weight per entry, plus knn_build's.
 *  @throws std::invalid_argument on K < 1, bad parameters or column ids out of range. */
KnnGraph knn_fit(const CsrView& X, KnnSimilarity similarity, int K, double k1, double b, int num_threads = 0);

/** Top-k items for each query row scored from a neighbour graph.
 *
 *  score_q(j) = sum over the stored entries (i, r) of row q of `rows`: r * N[i, j], with
 *  N the neighbour graph (items x items CSR: row i lists i's neighbours and their
 *  similarities), summed in the order of row q's entries and of N's rows.  Items no
 *  neighbour list reaches score 0 and are still candidates.
 *
 *  Candidates are all items, minus the row's stored items when exclude_seen, minus
 *  `deny`, and only `allow` when given.  Row q of the outputs holds the min(k,
 *  candidates) best by (score descending, id ascending), then padding -1 / -inf.
 *
 *  @param N            items x items neighbour CSR (n_rows == n_cols == n_items); its
 *                      column ids must be in [0, n_items).
 *  @param rows         n_queries x n_items CSR of the users' items and weights.
 *  @param allow        optional allow-list (ids in [0, n_items), any order, duplicates
 *                      fine); null = all items.  n_allow may be 0 (no candidate).
 *  @param deny         optional deny-list (ids in [0, n_items)).
 *  @param out_ids, out_scores  n_queries x k.
 *  Memory: per thread 9 bytes per item of scratch.
 *  @throws std::invalid_argument on k < 0, inconsistent shapes or ids out of range.
 */
void knn_recommend(const CsrView& N, const CsrView& rows, bool exclude_seen, const std::int32_t* allow,
                   std::int64_t n_allow, const std::int32_t* deny, std::int64_t n_deny, int k,
                   std::int32_t* out_ids, float* out_scores, int num_threads = 0);

/** Dense item Gram matrix G = W^T W (n_items x n_items, row-major float64, full
 *  symmetric), plus `ridge` on the diagonal: the left-hand side of EASE.  Needs
 *  8 * n_items^2 bytes of output and nothing else beyond the inputs.
 *  @throws std::invalid_argument on inconsistent shapes or a negative/non-finite ridge. */
void item_gram_dense(const CsrView& W, const CsrView& Wt, double ridge, double* out, int num_threads = 0);

}  // namespace tastemaker
