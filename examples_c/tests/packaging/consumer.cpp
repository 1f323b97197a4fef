// C++ consumer of an installed libhatebm through hatebm.hpp.
#include <hatebm.hpp>

#include <cstdio>

int main() {
    try {
        hatebm::check_abi();
        hatebm::check(hatebm_check_finite(nullptr, 1, nullptr));
    } catch (const hatebm::Error &e) {
        if (e.status() == HATEBM_NULL_PARAMETER) {
            std::printf("consumer_cpp: libhatebm %s OK\n", hatebm::version().c_str());
            return 0;
        }
        std::fprintf(stderr, "consumer_cpp: %s\n", e.what());
    }
    return 1;
}
