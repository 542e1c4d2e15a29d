// Term weighting (TF-IDF, BM25) of COO entries: tastemaker.data.weighting delegates here.
#include <string>

#include "common.hpp"
#include "tastemaker/weighting.hpp"

namespace tastemaker::py_bindings {
namespace {

struct Entries {
    const std::int64_t* doc;
    const std::int64_t* term;
    const double* x;
    std::int64_t nnz;
};

Entries entries(const py::array& doc, const py::array& term, const py::array& x) {
    Entries e{checked_ptr<std::int64_t>(doc, "doc", 1), checked_ptr<std::int64_t>(term, "term", 1),
              checked_ptr<double>(x, "values", 1), static_cast<std::int64_t>(doc.shape(0))};
    check_dim(term, 0, doc.shape(0), "term");
    check_dim(x, 0, doc.shape(0), "values");
    return e;
}

py::tuple corpus_stats_binding(const py::array& doc, const py::array& term, const py::array& x, std::int64_t n_docs,
                               std::int64_t n_terms) {
    const Entries e = entries(doc, term, x);
    CorpusStats c;
    {
        py::gil_scoped_release nogil;
        c = corpus_stats(e.doc, e.term, e.x, e.nnz, n_docs, n_terms);
    }
    return py::make_tuple(py::array_t<double>(static_cast<py::ssize_t>(c.df.size()), c.df.data()), c.length_sum);
}

py::array term_weights_binding(const std::string& method, const py::array& doc, const py::array& term,
                               const py::array& x, std::int64_t n_docs, std::int64_t n_terms, double k1, double b,
                               double idf_offset, const py::object& corpus_df, std::int64_t corpus_n_docs,
                               double corpus_length_sum) {
    TermWeightParams p;
    if (method == "tfidf")
        p.kind = TermWeighting::TfIdf;
    else if (method == "bm25")
        p.kind = TermWeighting::Bm25;
    else
        throw std::invalid_argument("method: expected 'tfidf' or 'bm25', got '" + method + "'");
    p.k1 = k1;
    p.b = b;
    p.idf_offset = idf_offset;
    const Entries e = entries(doc, term, x);
    CorpusStats corpus;
    const bool given = !corpus_df.is_none();
    if (given) {
        const auto df = corpus_df.cast<py::array>();
        const double* pd = checked_ptr<double>(df, "corpus df", 1);
        corpus.df.assign(pd, pd + df.shape(0));
        corpus.n_docs = corpus_n_docs;
        corpus.length_sum = corpus_length_sum;
    }
    py::array_t<double> out(static_cast<py::ssize_t>(e.nnz));
    double* po = out.mutable_data();
    {
        py::gil_scoped_release nogil;
        term_weights(p, e.doc, e.term, e.x, e.nnz, n_docs, n_terms, given ? &corpus : nullptr, po);
    }
    return out;
}

void register_weighting(py::module_& m) {
    m.def("corpus_stats", &corpus_stats_binding, py::arg("doc"), py::arg("term"), py::arg("values"),
          py::arg("n_docs"), py::arg("n_terms"),
          "Collection statistics of COO entries (int64 doc and term ids, float64 values) -> (df float64 "
          "per term, the documents' length sum).");
    m.def("term_weights", &term_weights_binding, py::arg("method"), py::arg("doc"), py::arg("term"),
          py::arg("values"), py::arg("n_docs"), py::arg("n_terms"), py::arg("k1") = 1.2, py::arg("b") = 0.75,
          py::arg("idf_offset") = 0.0, py::arg("corpus_df") = py::none(), py::arg("corpus_n_docs") = 0,
          py::arg("corpus_length_sum") = 0.0,
          "TF-IDF or BM25 weights (float64) of COO entries, with the statistics of a whole collection "
          "(corpus_df, corpus_n_docs, corpus_length_sum) or, when corpus_df is None, of these entries.");
}

}  // namespace
TM_REGISTER_BINDINGS(register_weighting);
}  // namespace tastemaker::py_bindings
