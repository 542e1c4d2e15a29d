#pragma once
/** Term weighting (TF-IDF and BM25): the library's one definition of these weights.
 *
 *  The input is a matrix of (document, term, x) entries, at most one per pair; x is the
 *  aggregated strength, negative for a dislike.  Confidence transforms read users as the
 *  documents and items as the terms (tastemaker.data.weighting delegates its "tfidf" and
 *  "bm25" here); the item-item neighbour build reads items as the documents and users
 *  as the terms (knn_fit).  Everything is computed in float64.
 *
 *      df(t)   = number of stored entries of term t (the documents that hold it)
 *      idf(t)  = log(N / (max(df(t), 1) + idf_offset))      N = every document
 *      len(d)  = sum of |x| over the entries of document d
 *      avglen  = sum of len(d) over every document / N      (an empty document counts
 *                with length 0; 1 when N = 0 or the mean is not positive)
 *      tfidf:  x * idf(t)
 *      bm25:   sign(x) * idf(t) * |x| (k1 + 1) / (|x| + k1 (1 - b + b len(d) / avglen))
 *              (0 where the denominator is 0)
 *
 *  N and avglen describe one collection, every document (Robertson & Zaragoza 2009).
 *  idf_offset = 1 gives implicit's log(N) - log1p(df).  The statistics of disjoint sets
 *  of documents add up (df and the length sum), so a matrix split into document blocks
 *  is weighted exactly as the whole: term_weights takes the whole collection's
 *  statistics and computes only len(d) from the entries it is given.
 */
#include <cmath>
#include <cstdint>
#include <vector>

#include "tastemaker/knn.hpp"  // CsrView

namespace tastemaker {

enum class TermWeighting : int { TfIdf = 0, Bm25 = 1 };

struct TermWeightParams {
    TermWeighting kind = TermWeighting::Bm25;
    double k1 = 1.2;
    double b = 0.75;
    double idf_offset = 0.0;
};

/** Whole-collection statistics: df per term, the number of documents, the length sum. */
struct CorpusStats {
    std::vector<double> df;
    std::int64_t n_docs = 0;
    double length_sum = 0.0;
};

/** avglen of the file comment. */
inline double corpus_avg_length(std::int64_t n_docs, double length_sum) {
    const double avg = n_docs > 0 ? length_sum / static_cast<double>(n_docs) : 1.0;
    return avg > 0 ? avg : 1.0;
}

/** idf(t) of the file comment. */
inline double term_idf(std::int64_t n_docs, double df, double idf_offset) {
    return std::log(static_cast<double>(n_docs) / ((df > 1.0 ? df : 1.0) + idf_offset));
}

/** The weight of one entry with strength x, its term's idf and its document's length. */
inline double term_weight(const TermWeightParams& p, double x, double idf, double doc_length, double avg_length) {
    if (p.kind == TermWeighting::TfIdf) return x * idf;
    const double mag = std::fabs(x);
    const double sign = x > 0 ? 1.0 : (x < 0 ? -1.0 : 0.0);
    const double norm = p.k1 * ((1.0 - p.b) + p.b * doc_length / avg_length);
    const double denom = mag + norm;
    const double tf = denom > 0 ? mag * (p.k1 + 1.0) / denom : 0.0;
    return sign * idf * tf;
}

/** Statistics of COO entries (doc[e] in [0, n_docs), term[e] in [0, n_terms)); the
 *  length sum adds the documents' lengths in document order.
 *  @throws std::invalid_argument on negative sizes or indices out of range. */
CorpusStats corpus_stats(const std::int64_t* doc, const std::int64_t* term, const double* x, std::int64_t nnz,
                         std::int64_t n_docs, std::int64_t n_terms);

/** Weights of COO entries that hold every entry of their documents: all of the
 *  collection, or a block of it when `corpus` (the whole collection's statistics, df of
 *  n_terms values) is given.  len(d) is summed from these entries over n_docs documents;
 *  without a corpus the statistics are those of these entries (as corpus_stats).
 *  out: nnz weights.
 *  @throws std::invalid_argument on negative sizes, indices out of range, a corpus of
 *  another size, a negative k1, b outside [0, 1] or a negative idf_offset. */
void term_weights(const TermWeightParams& p, const std::int64_t* doc, const std::int64_t* term, const double* x,
                  std::int64_t nnz, std::int64_t n_docs, std::int64_t n_terms, const CorpusStats* corpus,
                  double* out);

/** Weights of a CSR matrix whose rows are the documents and columns the terms, with the
 *  statistics of this matrix (the whole collection).  x: the entries' strengths (one per
 *  stored entry), or null for m.data.  out: one weight per stored entry.  OpenMP over
 *  rows.  Callers validate the structure. */
void term_weights_rows(const TermWeightParams& p, const CsrView& m, const double* x, double* out,
                       int num_threads = 0);

}  // namespace tastemaker
