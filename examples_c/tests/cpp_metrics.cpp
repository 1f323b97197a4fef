// The C++ wrapper's metrics (hatebm::metrics::*), hatebm::Span (the
// pointer + length view every buffer parameter takes) and the last-error
// helpers (hatebm::last_error_message / last_error_clear), one test each:
// every wrapper returns exactly what its C function writes, for a
// std::vector and for {ptr, n}, and throws hatebm::Error with the C status on
// misuse. Small sets, so it also runs quickly under Valgrind.
#include <hatebm.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "check.h"

namespace {

constexpr std::size_t kN = 40;
constexpr std::size_t kD = 3;

// Deterministic values in [-1, 1) (xorshift32).
std::vector<float> uniform(std::size_t n, std::uint32_t seed, float shift = 0.0f) {
    std::vector<float> v(n);
    for (float &x : v) {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        x = static_cast<float>(static_cast<double>(seed) / 2147483648.0 - 1.0) + shift;
    }
    return v;
}

const std::vector<float> a = uniform(kN * kD, 12345u);
const std::vector<float> b = uniform(kN * kD, 777u, 0.5f);

void test_span() {
    std::vector<float> v = {1.0f, 2.0f, 3.0f};
    hatebm::Span<float> s(v);
    CHECK(s.data() == v.data() && s.size() == 3 && !s.empty());
    s[1] = 5.0f;
    CHECK(v[1] == 5.0f);
    float sum = 0.0f;
    for (float x : s) {
        sum += x;
    }
    CHECK(sum == 9.0f);
    const std::vector<float> &cv = v;
    hatebm::Span<const float> c(cv);
    CHECK(c.data() == v.data() && c.size() == 3);
    hatebm::Span<const float> p(v.data() + 1, 2);
    CHECK(p[0] == 5.0f && p.size() == 2 && p.data_or_null() == v.data() + 1);
    hatebm::Span<const float> none;
    CHECK(none.empty() && none.data_or_null() == nullptr);
    CHECK(hatebm::Span<float>(v.data(), 0).data_or_null() == nullptr);
}

void test_frechet() {
    double want = -1.0;
    CHECK_OK(hatebm_metrics_frechet(a.data(), a.size(), kN, b.data(), b.size(), kN, kD, &want));
    CHECK(want > 0.5);
    CHECK(hatebm::metrics::frechet(a, b, kD) == want);
    CHECK(hatebm::metrics::frechet({a.data(), a.size()}, {b.data(), b.size()}, kD) == want);
    CHECK(hatebm::metrics::frechet(a, a, kD) < 1e-9);
    // A length that is not a whole number of rows; dim 0 (0 rows: the
    // library's length check answers first), also for empty sets.
    CHECK(throws_status([] { hatebm::metrics::frechet({a.data(), 7}, b, kD); }, HATEBM_SHAPE_MISMATCH));
    CHECK(throws_status([] { hatebm::metrics::frechet(a, b, 0); }, HATEBM_SHAPE_MISMATCH));
    CHECK(throws_status([] { hatebm::metrics::frechet({}, {}, 0); }, HATEBM_INVALID_ARGUMENT));
    CHECK(throws_status([] { hatebm::metrics::frechet({nullptr, 6}, b, kD); }, HATEBM_NULL_PARAMETER));
}

void test_frechet_pca() {
    double want = -1.0;
    CHECK_OK(hatebm_metrics_frechet_pca(a.data(), a.size(), kN, b.data(), b.size(), kN, kD, 2, 7,
                                        &want));
    CHECK(hatebm::metrics::frechet_pca(a, b, kD, 2, 7) == want);
    CHECK(hatebm::metrics::frechet_pca(a, b, kD, 2, 7) <= hatebm::metrics::frechet_pca(a, b, kD, 3, 7) + 1e-9);
    CHECK(throws_status([] { hatebm::metrics::frechet_pca(a, b, kD, kD + 1); }, HATEBM_INVALID_ARGUMENT));
}

void test_precision_recall() {
    double p = -1.0, r = -1.0;
    CHECK_OK(hatebm_metrics_precision_recall(a.data(), a.size(), kN, b.data(), b.size(), kN, kD, 3,
                                             &p, &r));
    const hatebm::metrics::PrecisionRecall pr = hatebm::metrics::precision_recall(a, b, kD, 3);
    CHECK(pr.precision == p && pr.recall == r);
    const auto same = hatebm::metrics::precision_recall(a, a, kD);
    CHECK(same.precision == 1.0 && same.recall == 1.0);
    CHECK(throws_status([] { hatebm::metrics::precision_recall(a, b, kD, 0); }, HATEBM_INVALID_ARGUMENT));
}

void test_mode_coverage() {
    // 4 centres; 20 samples, all near centres 0 and 1.
    const std::vector<float> centres = {0, 0, 10, 0, 0, 10, 10, 10};
    std::vector<float> x;
    for (std::size_t i = 0; i < 20; ++i) {
        const float o = 0.001f * static_cast<float>(i);
        x.push_back((i % 2 == 0 ? 0.0f : 10.0f) + o);
        x.push_back(-o);
    }
    hatebm_mode_coverage want{};
    double fr[4] = {0, 0, 0, 0};
    CHECK_OK(hatebm_metrics_mode_coverage(x.data(), x.size(), 20, centres.data(), centres.size(), 4,
                                          0.1f, -1.0, 0.0, &want, fr, 4));
    const hatebm::metrics::ModeCoverage got = hatebm::metrics::mode_coverage(x, centres, 0.1f);
    CHECK(got.summary.modes_covered == want.modes_covered && want.modes_covered == 2);
    CHECK(got.summary.kl_to_uniform == want.kl_to_uniform);
    CHECK(std::fabs(got.summary.kl_to_uniform - std::log(2.0)) < 1e-9);
    CHECK(got.summary.within == want.within && got.summary.radius == want.radius);
    CHECK(got.fractions.size() == 4 && got.fractions[0] == 0.5 && got.fractions[1] == 0.5 &&
          got.fractions[2] == 0.0 && got.fractions[3] == fr[3]);
    // The optional arguments reach the library.
    const auto strict = hatebm::metrics::mode_coverage(x, centres, 0.1f, 0.6, 1.0);
    CHECK(strict.summary.modes_covered == 0 && strict.summary.min_fraction == 0.6);
    CHECK(std::fabs(strict.summary.radius - 0.1) < 1e-6);
    CHECK(throws_status([&] { hatebm::metrics::mode_coverage(x, centres, -1.0f); },
                        HATEBM_INVALID_ARGUMENT));
}

void test_mmd2() {
    double want = 0.0;
    CHECK_OK(hatebm_metrics_mmd2(a.data(), a.size(), kN, b.data(), b.size(), kN, kD, nullptr, 0, &want));
    CHECK(hatebm::metrics::mmd2(a, b, kD) == want);
    const std::vector<double> bw = {0.5, 2.0};
    CHECK_OK(hatebm_metrics_mmd2(a.data(), a.size(), kN, b.data(), b.size(), kN, kD, bw.data(), 2, &want));
    CHECK(hatebm::metrics::mmd2(a, b, kD, bw) == want);
    const double one = 1.0;
    CHECK(hatebm::metrics::mmd2(a, b, kD, {&one, 1}) != want);
    const std::vector<double> bad = {1.0, -1.0};
    CHECK(throws_status([&] { hatebm::metrics::mmd2(a, b, kD, bad); }, HATEBM_INVALID_ARGUMENT));
}

void test_energy_distance() {
    // Closed form: real {0, 1}, fake {2, 3} in 1-D: 2 * 2 - 1 - 1 = 2.
    const std::vector<float> real = {0.0f, 1.0f}, fake = {2.0f, 3.0f};
    CHECK(std::fabs(hatebm::metrics::energy_distance(real, fake, 1) - 2.0) < 1e-9);
    double want = 0.0;
    CHECK_OK(hatebm_metrics_energy_distance(a.data(), a.size(), kN, b.data(), b.size(), kN, kD, &want));
    CHECK(hatebm::metrics::energy_distance(a, b, kD) == want);
    CHECK(throws_status([&] { hatebm::metrics::energy_distance(real, {fake.data(), 1}, 1); },
                        HATEBM_INVALID_ARGUMENT));
}

void test_last_error() {
    hatebm::last_error_clear();
    CHECK(hatebm::last_error_message().empty());
    CHECK(hatebm_check_finite(nullptr, 2, nullptr) == HATEBM_NULL_PARAMETER);
    const std::string copied = hatebm::last_error_message();
    CHECK(!copied.empty() && copied == hatebm_last_error_message());
    CHECK(copied.find("`data`") != std::string::npos);
    CHECK(hatebm::last_error_message() == copied);  // reading it changes nothing
    hatebm::last_error_clear();
    CHECK(std::string(hatebm_last_error_message()).empty());
}

}  // namespace

int main() {
    try {
        hatebm::check_abi();
        test_span();
        test_frechet();
        test_frechet_pca();
        test_precision_recall();
        test_mode_coverage();
        test_mmd2();
        test_energy_distance();
        test_last_error();
    } catch (const std::exception &e) {
        std::fprintf(stderr, "cpp_metrics: unexpected exception: %s\n", e.what());
        return 1;
    }
    return check_summary("cpp_metrics");
}
