// gaussian_mixture.cpp - the Langevin sampler of libhatebm on a user energy
// written in C++: a 2-D Gaussian mixture with an analytic gradient, passed to
// the library as a lambda (hatebm::CustomEnergy). The program samples it with
// many independent chains and checks the samples' mean and covariance against
// the mixture's exact moments.
//
//   gaussian_mixture [CHAINS [STEPS]]     (defaults 2000 and 1500)
//
// Tolerance: each moment must lie within 5 Monte Carlo standard errors
// (estimated from the N independent final states: sqrt(Var / N) for a mean,
// sqrt(Var((x_i - m_i)(x_j - m_j)) / N) for a covariance entry) plus 0.02 for
// the sampler's discretisation bias (unadjusted Langevin with step eps^2/2 =
// 0.0072 inflates a variance sigma^2 by about eps^2/(4 sigma^2) ~ 1%). The seed
// is fixed, so the outcome is deterministic.
//
// Build: c++ -std=c++17 gaussian_mixture.cpp $(pkg-config --cflags --libs hatebm) -o gaussian_mixture
#include <hatebm.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Component {
    double weight;
    double mx, my;
};

// Three overlapping components with a shared isotropic sigma (so chains mix
// between them within the run).
constexpr std::array<Component, 3> kMix = {{{0.5, -1.2, 0.0}, {0.3, 1.2, 0.4}, {0.2, 0.0, 1.5}}};
constexpr double kSigma = 0.8;

// U(x) = -log sum_k w_k N(x; mu_k, sigma^2 I) (up to a constant), and its
// gradient sum_k r_k(x) (x - mu_k) / sigma^2 with responsibilities r_k.
void mixture_energy(const float *x, std::size_t n, std::size_t len, float *out_e, float *out_g) {
    if (len != 2) {
        throw std::runtime_error("the mixture is 2-D");
    }
    const double s2 = kSigma * kSigma;
    for (std::size_t b = 0; b < n; ++b) {
        const double px = x[2 * b], py = x[2 * b + 1];
        std::array<double, 3> logp{};
        double top = -1e300;
        for (std::size_t k = 0; k < kMix.size(); ++k) {
            const double dx = px - kMix[k].mx, dy = py - kMix[k].my;
            logp[k] = std::log(kMix[k].weight) - (dx * dx + dy * dy) / (2.0 * s2);
            top = std::max(top, logp[k]);
        }
        double z = 0.0;
        for (double lp : logp) {
            z += std::exp(lp - top);
        }
        out_e[b] = static_cast<float>(-(top + std::log(z)));
        if (out_g != nullptr) {
            double gx = 0.0, gy = 0.0;
            for (std::size_t k = 0; k < kMix.size(); ++k) {
                const double r = std::exp(logp[k] - top) / z;
                gx += r * (px - kMix[k].mx) / s2;
                gy += r * (py - kMix[k].my) / s2;
            }
            out_g[2 * b] = static_cast<float>(gx);
            out_g[2 * b + 1] = static_cast<float>(gy);
        }
    }
}

// A small portable normal generator (xorshift64* + Box-Muller) for the
// chains' starting points, so the run is the same with every C++ library.
class Normal {
  public:
    explicit Normal(std::uint64_t seed) : s_(seed | 1) {}
    double operator()() {
        const double u1 = (static_cast<double>(next() >> 11) + 0.5) / 9007199254740992.0;
        const double u2 = (static_cast<double>(next() >> 11) + 0.5) / 9007199254740992.0;
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    }

  private:
    std::uint64_t next() {
        s_ ^= s_ >> 12;
        s_ ^= s_ << 25;
        s_ ^= s_ >> 27;
        return s_ * 2685821657736338717ULL;
    }
    std::uint64_t s_;
};

int failures = 0;

void expect_close(const char *what, double got, double want, double tol) {
    const bool ok = std::fabs(got - want) <= tol;
    std::printf("  %-10s %+.4f  exact %+.4f  |diff| %.4f <= %.4f  %s\n", what, got, want,
                std::fabs(got - want), tol, ok ? "ok" : "FAIL");
    if (!ok) {
        ++failures;
    }
}

}  // namespace

int main(int argc, char **argv) {
    const std::size_t chains = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 2000;
    const std::size_t steps = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1500;
    try {
        hatebm::check_abi();
        hatebm::CustomEnergy energy({2}, mixture_energy, "gaussian mixture");

        // Start the chains spread out (N(0, 2^2)) so every mode is visited.
        Normal normal(12345);
        std::vector<float> y(2 * chains);
        for (float &v : y) {
            v = static_cast<float>(2.0 * normal());
        }

        hatebm_langevin_params p = hatebm::langevin_default_params();
        p.steps = steps;
        p.temperature = 1.0f;  // sample p(x) itself
        p.eps_res = 0.12f;     // drift eps^2/2 = 0.0072, noise eps
        p.clip_res = 0.0f;     // no clipping: it would bias the stationary law
        p.noise = true;
        p.seed = 2024;
        const hatebm_langevin_stats st = hatebm::langevin(energy, p, y);
        std::printf("gaussian_mixture: %zu chains x %zu steps, mean energy %.4f, drift %.4f\n",
                    chains, steps, st.mean_energy, st.drift_norm_res);

        // Exact moments of the mixture.
        double m[2] = {0, 0}, c[3] = {0, 0, 0};  // cxx, cxy, cyy
        for (const Component &k : kMix) {
            m[0] += k.weight * k.mx;
            m[1] += k.weight * k.my;
        }
        for (const Component &k : kMix) {
            const double dx = k.mx - m[0], dy = k.my - m[1];
            c[0] += k.weight * (kSigma * kSigma + dx * dx);
            c[1] += k.weight * dx * dy;
            c[2] += k.weight * (kSigma * kSigma + dy * dy);
        }

        // Sample moments and their standard errors.
        const double n = static_cast<double>(chains);
        double sm[2] = {0, 0};
        for (std::size_t b = 0; b < chains; ++b) {
            sm[0] += y[2 * b] / n;
            sm[1] += y[2 * b + 1] / n;
        }
        double sc[3] = {0, 0, 0}, sc2[3] = {0, 0, 0};
        for (std::size_t b = 0; b < chains; ++b) {
            const double dx = y[2 * b] - sm[0], dy = y[2 * b + 1] - sm[1];
            const double t[3] = {dx * dx, dx * dy, dy * dy};
            for (int i = 0; i < 3; ++i) {
                sc[i] += t[i] / n;
                sc2[i] += t[i] * t[i] / n;
            }
        }
        const double bias = 0.02, k_se = 5.0;
        std::printf("gaussian_mixture: moments (tolerance %.0f standard errors + %.2f)\n", k_se,
                    bias);
        expect_close("mean x", sm[0], m[0], k_se * std::sqrt(sc[0] / n) + bias);
        expect_close("mean y", sm[1], m[1], k_se * std::sqrt(sc[2] / n) + bias);
        const char *names[3] = {"cov xx", "cov xy", "cov yy"};
        for (int i = 0; i < 3; ++i) {
            expect_close(names[i], sc[i], c[i], k_se * std::sqrt((sc2[i] - sc[i] * sc[i]) / n) + bias);
        }

        // A callback that throws: the library call fails cleanly and the C++
        // exception comes back out of hatebm::langevin.
        hatebm::CustomEnergy broken({2}, [](const float *, std::size_t, std::size_t, float *, float *) {
            throw std::runtime_error("no energy today");
        });
        std::vector<float> y2(y.begin(), y.begin() + 8);
        const std::vector<float> before = y2;
        bool threw = false;
        try {
            hatebm::langevin(broken, p, y2);
        } catch (const std::runtime_error &e) {
            threw = std::string(e.what()) == "no energy today";
        }
        std::printf("  throwing callback rethrown, chains untouched: %s\n",
                    threw && y2 == before ? "ok" : "FAIL");
        failures += threw && y2 == before ? 0 : 1;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "gaussian_mixture: %s\n", e.what());
        return 1;
    }
    std::printf("gaussian_mixture: %s\n", failures == 0 ? "OK" : "FAILED");
    return failures == 0 ? 0 : 1;
}
