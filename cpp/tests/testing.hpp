#pragma once
// A minimal self-registering test harness (no external framework: PyPI-only deps).
// Each test file defines TM_TEST(name) { ... } and uses TM_CHECK / TM_CHECK_NEAR /
// TM_CHECK_THROWS.  Failures are counted and reported; main() returns non-zero.
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace tmtest {

struct Case {
    const char* name;
    std::function<void()> fn;
};

inline std::vector<Case>& registry() {
    static std::vector<Case> r;
    return r;
}
inline int& failures() {
    static int f = 0;
    return f;
}

struct Registrar {
    Registrar(const char* name, std::function<void()> fn) { registry().push_back({name, std::move(fn)}); }
};

inline void fail(const char* file, int line, const std::string& msg) {
    ++failures();
    std::fprintf(stderr, "  FAIL %s:%d: %s\n", file, line, msg.c_str());
}

}  // namespace tmtest

#include "tastemaker/simd.hpp"

namespace tmtest {

/** Makes `isa` the active SIMD path for its lifetime, then restores the previous one
 *  (also when a check throws). */
class ActiveIsa {
public:
    explicit ActiveIsa(tastemaker::simd::Isa isa) : before_(tastemaker::simd::active()) {
        tastemaker::simd::set_active(isa);
    }
    ~ActiveIsa() { tastemaker::simd::set_active(before_); }
    ActiveIsa(const ActiveIsa&) = delete;
    ActiveIsa& operator=(const ActiveIsa&) = delete;

private:
    tastemaker::simd::Isa before_;
};

/** Runs fn(isa) once per SIMD path this CPU supports, lowest first, with that path active. */
template <class Fn>
void for_each_isa(Fn&& fn) {
    for (tastemaker::simd::Isa isa : tastemaker::simd::available()) {
        ActiveIsa scope(isa);
        fn(isa);
    }
}

/** Fails (naming the family and the path) unless every entry of the path's resolved table
 *  is set and, when `own_complete`, the path's own table had every entry itself. */
template <class Table>
void check_table(const char* family, const tastemaker::simd::Dispatch<Table>& d, tastemaker::simd::Isa isa,
                 bool own_complete) {
    int nulls = 0;
    tastemaker::simd::for_each_entry(d.get(isa), [&](const auto& entry) { nulls += entry == nullptr; });
    if (nulls != 0)
        fail(__FILE__, __LINE__,
             std::string(family) + " on " + tastemaker::simd::isa_name(isa) + ": " + std::to_string(nulls) +
                 " null entries");
    if (own_complete && d.borrowed(isa) != 0)
        fail(__FILE__, __LINE__,
             std::string(family) + " on " + tastemaker::simd::isa_name(isa) + ": " + std::to_string(d.borrowed(isa)) +
                 " entries missing from its own table (taken from a lower path)");
}

}  // namespace tmtest

#define TM_CONCAT2(a, b) a##b
#define TM_CONCAT(a, b) TM_CONCAT2(a, b)
#define TM_TEST(name)                                                             \
    static void name();                                                           \
    static ::tmtest::Registrar TM_CONCAT(tm_reg_, name)(#name, &name);            \
    static void name()

#define TM_CHECK(cond)                                                            \
    do {                                                                          \
        if (!(cond)) ::tmtest::fail(__FILE__, __LINE__, "CHECK(" #cond ")");      \
    } while (0)

#define TM_CHECK_NEAR(a, b, tol)                                                  \
    do {                                                                          \
        const double tm_a_ = (a), tm_b_ = (b);                                    \
        if (!(std::fabs(tm_a_ - tm_b_) <= (tol)))                                 \
            ::tmtest::fail(__FILE__, __LINE__,                                    \
                           std::string("NEAR(" #a ", " #b "): ") +                \
                               std::to_string(tm_a_) + " vs " + std::to_string(tm_b_)); \
    } while (0)

#define TM_CHECK_THROWS(expr, ExcType)                                            \
    do {                                                                          \
        bool tm_thrown_ = false;                                                  \
        try {                                                                     \
            (void)(expr);                                                         \
        } catch (const ExcType&) {                                                \
            tm_thrown_ = true;                                                    \
        }                                                                         \
        if (!tm_thrown_) ::tmtest::fail(__FILE__, __LINE__, "expected " #ExcType " from " #expr); \
    } while (0)
