#include <cstdio>
#include <cstring>

#include "testing.hpp"

int main(int argc, char** argv) {
    const char* filter = argc > 1 ? argv[1] : nullptr;
    int run = 0;
    for (const auto& c : tmtest::registry()) {
        if (filter && !std::strstr(c.name, filter)) continue;
        const int before = tmtest::failures();
        c.fn();
        ++run;
        std::printf("%s %s\n", tmtest::failures() == before ? "ok  " : "FAIL", c.name);
    }
    std::printf("%d tests, %d failed checks\n", run, tmtest::failures());
    return (tmtest::failures() == 0 && run > 0) ? 0 : 1;
}
