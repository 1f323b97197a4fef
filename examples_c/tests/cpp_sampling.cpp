// The C++ wrapper over the sampler, AIS, bank-read and distributed API, one
// test per wrapper: each returns what its C function writes for the same
// inputs (chains bit for bit, statistics field for field) and throws
// hatebm::Error with the C status on misuse, the chains untouched.
//   hatebm::langevin / langevin_mcmc on user models (n derived from y),
//   mcmc_default_params, ais_default_params, Session mcmc_params / mh_stats /
//   langevin / langevin_mcmc / bank_read / sample into a span / distributed /
//   resume_distributed / mpi, TrainedModel set_sampler / mcmc_params /
//   set_mcmc / mh_stats / log_z / sample into a span, and adopt / release of
//   Bank, CustomEnergy and CustomGenerator.
#include <hatebm.hpp>

#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "check.h"

namespace {

bool same_floats(const std::vector<float> &a, const std::vector<float> &b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}
// Equal, or both NaN (fields that do not apply are NaN).
bool same(double a, double b) { return a == b || (a != a && b != b); }
bool same_mh(const hatebm_mh_stats &a, const hatebm_mh_stats &b) {
    return a.struct_size == b.struct_size && a.available == b.available &&
           same(a.alpha_res, b.alpha_res) && same(a.alpha_latent, b.alpha_latent) &&
           same(a.accept_res, b.accept_res) && same(a.accept_latent, b.accept_latent) &&
           a.divergences == b.divergences && same(a.eps_res, b.eps_res) &&
           same(a.eps_latent, b.eps_latent) && same(a.suggested_eps_res, b.suggested_eps_res) &&
           same(a.suggested_eps_latent, b.suggested_eps_latent);
}
bool same_mcmc(const hatebm_mcmc_params &a, const hatebm_mcmc_params &b) {
    return a.struct_size == b.struct_size && a.method == b.method && a.shadow_mh == b.shadow_mh &&
           a.joint_proposal == b.joint_proposal && a.adapt_mass == b.adapt_mass &&
           a.adapt_steps == b.adapt_steps && a.target_accept == b.target_accept &&
           a.leapfrog_steps == b.leapfrog_steps && a.mass_res == b.mass_res &&
           a.mass_latent == b.mass_latent && a.friction == b.friction;
}

// U(x) = |x|^2 / 2 on 2-D samples, as a C++ lambda.
hatebm::CustomEnergy gauss() {
    return hatebm::CustomEnergy({2}, [](const float *x, std::size_t n, std::size_t len,
                                        float *out_e, float *out_g) {
        for (std::size_t b = 0; b < n; ++b) {
            float s = 0.0f;
            for (std::size_t j = 0; j < len; ++j) {
                s += 0.5f * x[b * len + j] * x[b * len + j];
                if (out_g != nullptr) {
                    out_g[b * len + j] = x[b * len + j];
                }
            }
            out_e[b] = s;
        }
    });
}

// x = (z, -z) from 1-D latents.
hatebm::CustomGenerator mirror() {
    return hatebm::CustomGenerator(
        {1}, {2},
        [](const float *z, std::size_t n, std::size_t, float *out_x, std::size_t) {
            for (std::size_t b = 0; b < n; ++b) {
                out_x[2 * b] = z[b];
                out_x[2 * b + 1] = -z[b];
            }
        },
        [](const float *, const float *cot, std::size_t n, std::size_t, std::size_t, float *gz) {
            for (std::size_t b = 0; b < n; ++b) {
                gz[b] = cot[2 * b] - cot[2 * b + 1];
            }
        });
}

hatebm_langevin_params neutral(std::size_t steps) {
    hatebm_langevin_params p = hatebm::langevin_neutral_params();
    p.steps = steps;
    p.eps_res = 0.8f;
    p.seed = 17;
    return p;
}

std::vector<float> ramp(std::size_t n, float scale) {
    std::vector<float> v(n);
    for (std::size_t i = 0; i < n; ++i) {
        v[i] = scale * static_cast<float>(i % 7) - 0.3f;
    }
    return v;
}

void test_defaults() {
    const hatebm_mcmc_params m = hatebm::mcmc_default_params(), mc = hatebm_mcmc_default_params();
    CHECK(same_mcmc(m, mc) && m.method == HATEBM_SAMPLER_METHOD_ULA && m.struct_size == sizeof m);
    const hatebm_ais_params a = hatebm::ais_default_params(), ac = hatebm_ais_default_params();
    CHECK(a.struct_size == sizeof a && a.temperatures == ac.temperatures && a.chains == ac.chains &&
          a.base_sigma == ac.base_sigma && a.transitions == ac.transitions &&
          a.method == ac.method && a.eps == ac.eps && a.leapfrog_steps == ac.leapfrog_steps &&
          a.beta_power == ac.beta_power && a.seed == ac.seed);
}

void test_custom_langevin() {
    hatebm::CustomEnergy e = gauss();
    const hatebm_langevin_params p = neutral(30);
    // ULA in sample space: the C call on the same handle gives the same chains.
    std::vector<float> y = ramp(16, 0.1f), yc = y;
    const hatebm_langevin_stats st = hatebm::langevin(e, p, y);
    hatebm_langevin_stats stc{};
    CHECK_OK(hatebm_langevin_run_custom(e.get(), nullptr, &p, nullptr, 0, yc.data(), yc.size(), 8, &stc));
    CHECK(same_floats(y, yc) && st.steps == stc.steps && st.mean_energy == stc.mean_energy);
    // Pointer + length: the first 4 chains only.
    std::vector<float> part = ramp(16, 0.1f), partc(part.begin(), part.begin() + 8);
    hatebm::langevin(e, p, {part.data(), 8});
    CHECK_OK(hatebm_langevin_run_custom(e.get(), nullptr, &p, nullptr, 0, partc.data(), 8, 4, nullptr));
    CHECK(std::memcmp(part.data(), partc.data(), 8 * sizeof(float)) == 0);
    const std::vector<float> untouched = ramp(16, 0.1f);
    CHECK(std::memcmp(part.data() + 8, untouched.data() + 8, 8 * sizeof(float)) == 0);

    // MALA: chains and acceptance equal the C call's.
    hatebm_mcmc_params m = hatebm::mcmc_default_params();
    m.method = HATEBM_SAMPLER_METHOD_MALA;
    y = ramp(16, 0.1f);
    yc = y;
    const hatebm::McmcStats ms = hatebm::langevin_mcmc(e, p, m, y);
    hatebm_mh_stats mhc{};
    CHECK_OK(hatebm_langevin_run_custom_mcmc(e.get(), nullptr, &p, &m, nullptr, 0, yc.data(), yc.size(),
                                             8, &stc, &mhc));
    CHECK(same_floats(y, yc) && ms.mh.available && same_mh(ms.mh, mhc));
    CHECK(ms.langevin.mean_energy == stc.mean_energy);

    // Through a generator: z and y both move, as in C.
    hatebm::CustomGenerator g = mirror();
    hatebm_langevin_params pg = p;
    pg.update_latents = true;
    pg.eps_latent = 0.05f;
    std::vector<float> z = ramp(4, 0.2f), zc = z;
    y = ramp(8, 0.05f);
    yc = y;
    hatebm::langevin(e, g, pg, z, y);
    CHECK_OK(hatebm_langevin_run_custom(e.get(), g.get(), &pg, zc.data(), 4, yc.data(), 8, 4, nullptr));
    CHECK(same_floats(z, zc) && same_floats(y, yc) && z != ramp(4, 0.2f));
    z = ramp(4, 0.2f);
    zc = z;
    y = ramp(8, 0.05f);
    yc = y;
    const hatebm::McmcStats mg = hatebm::langevin_mcmc(e, g, pg, m, z, y);
    CHECK_OK(hatebm_langevin_run_custom_mcmc(e.get(), g.get(), &pg, &m, zc.data(), 4, yc.data(), 8, 4,
                                             nullptr, &mhc));
    CHECK(same_floats(z, zc) && same_floats(y, yc) && same_mh(mg.mh, mhc));

    // Misuse: the chains are untouched.
    const std::vector<float> before = ramp(16, 0.1f);
    y = before;
    m.method = 9;
    CHECK(throws_status([&] { hatebm::langevin_mcmc(e, p, m, y); }, HATEBM_INVALID_ARGUMENT));
    CHECK(y == before);
    std::vector<float> odd(5, 0.0f);  // not a whole number of samples
    CHECK(throws_status([&] { hatebm::langevin(e, p, odd); }, HATEBM_SHAPE_MISMATCH));
    CHECK(throws_status([&] { hatebm::langevin(e, g, pg, {}, y); }, HATEBM_NULL_PARAMETER));  // no z
    // A throwing callable is rethrown, not reported as a status.
    hatebm::CustomEnergy broken({2}, [](const float *, std::size_t, std::size_t, float *, float *) {
        throw std::runtime_error("no energy");
    });
    bool rethrown = false;
    try {
        hatebm::langevin_mcmc(broken, p, hatebm::mcmc_default_params(), y);
    } catch (const std::runtime_error &err) {
        rethrown = std::string(err.what()) == "no energy";
    }
    CHECK(rethrown && y == before);
}

const char *kToml =
    "preset = \"toy2d\"\nseed = 3\nthreads = 1\n"
    "[data]\nkind = \"toy\"\nname = \"ring8\"\nn = 256\n"
    "[model.energy]\nkind = \"mlp\"\ndims = [2, 16, 16, 1]\n"
    "[model.generator]\nkind = \"mlp\"\ndims = [2, 16, 16, 2]\n"
    "[train]\nsteps = 1000\nbatch_size = 16\nbank_size = 64\n"
    "[langevin]\nsteps = 4\nshadow_mh = true\n"
    "[sample]\nbatch_size = 8\n"
    "[dist]\nshards = 2\ncheck_every = 1\n"
    "[output]\nprogress = \"never\"\nplot = false\n";

hatebm::Config config(const char *out) {
    return hatebm::Config::adopt(test_config(kToml, "cpp_sampling", out));
}

void test_session(hatebm::Session &s) {
    hatebm_mcmc_params mc{};
    CHECK_OK(hatebm_session_mcmc_params(s.get(), &mc));
    const hatebm_mcmc_params m0 = s.mcmc_params();
    CHECK(same_mcmc(m0, mc) && m0.shadow_mh);
    CHECK(throws_status([&] { s.mh_stats(); }, HATEBM_INVALID_ARGUMENT));  // before the first step
    s.step();
    hatebm_mh_stats mhc{};
    CHECK_OK(hatebm_session_mh_stats(s.get(), &mhc));
    const hatebm_mh_stats mh = s.mh_stats();
    CHECK(same_mh(mh, mhc) && mh.available && mh.suggested_eps_res > 0.0);

    const hatebm_langevin_params p = s.langevin_params();
    std::vector<float> y = ramp(16, 0.1f), yc = y;
    s.langevin(p, y);
    CHECK_OK(hatebm_session_langevin(s.get(), &p, nullptr, 0, yc.data(), 16, 8, nullptr));
    CHECK(same_floats(y, yc) && y != ramp(16, 0.1f));
    std::vector<float> z = ramp(16, 0.2f), zc = z;
    y = ramp(16, 0.1f);
    yc = y;
    s.langevin(p, z, y);
    CHECK_OK(hatebm_session_langevin(s.get(), &p, zc.data(), 16, yc.data(), 16, 8, nullptr));
    CHECK(same_floats(z, zc) && same_floats(y, yc));

    hatebm_mcmc_params m = m0;
    m.method = HATEBM_SAMPLER_METHOD_HMC;
    m.shadow_mh = false;
    m.leapfrog_steps = 3;
    y = ramp(16, 0.1f);
    yc = y;
    const hatebm::McmcStats ms = s.langevin_mcmc(p, m, y);
    CHECK_OK(hatebm_session_langevin_mcmc(s.get(), &p, &m, nullptr, 0, yc.data(), 16, 8, nullptr, &mhc));
    CHECK(same_floats(y, yc) && same_mh(ms.mh, mhc) && ms.langevin.steps == p.steps);
    z = ramp(16, 0.2f);
    zc = z;
    s.langevin_mcmc(p, m, z, y);
    CHECK_OK(hatebm_session_langevin_mcmc(s.get(), &p, &m, zc.data(), 16, yc.data(), 16, 8, nullptr, nullptr));
    CHECK(same_floats(z, zc) && same_floats(y, yc));
    const std::vector<float> before = y;
    m.method = 9;
    CHECK(throws_status([&] { s.langevin_mcmc(p, m, y); }, HATEBM_INVALID_ARGUMENT));
    CHECK(y == before);

    // Bank reads: (z, x) of a slot as the C call copies them.
    CHECK(s.bank_size() == 64);
    const auto zx = s.bank_read(5);
    std::vector<float> bz(s.latent_len()), bx(s.sample_len());
    CHECK_OK(hatebm_session_bank_read(s.get(), 5, bz.data(), bz.size(), bx.data(), bx.size()));
    CHECK(same_floats(zx.first, bz) && same_floats(zx.second, bx) && zx.first.size() == 2);
    float only_x[2] = {0, 0};
    s.bank_read(5, {}, {only_x, 2});  // skip the latent
    CHECK(std::memcmp(only_x, bx.data(), sizeof only_x) == 0);
    CHECK(throws_status([&] { s.bank_read(64); }, HATEBM_INVALID_ARGUMENT));
    CHECK(throws_status([&] { s.bank_read(0, {}, {only_x, 1}); }, HATEBM_SHAPE_MISMATCH));

    // Sampling into a caller buffer equals the vector form.
    hatebm_sample_params sp = hatebm::sample_default_params();
    sp.n = 4;
    sp.seed = 8;
    std::vector<float> into(8, 0.0f);
    s.sample(sp, into);
    CHECK(same_floats(into, s.sample(sp)));
    CHECK(throws_status([&] { s.sample(sp, {into.data(), 7}); }, HATEBM_SHAPE_MISMATCH));
}

void test_trained_model(const std::string &ck) {
    hatebm::TrainedModel model(ck);
    hatebm_mcmc_params mc{};
    CHECK_OK(hatebm_trained_model_mcmc_params(model.get(), &mc));
    hatebm_mcmc_params m = model.mcmc_params();
    CHECK(same_mcmc(m, mc) && m.method == HATEBM_SAMPLER_METHOD_ULA);

    model.set_sampler("mala");
    CHECK(model.mcmc_params().method == HATEBM_SAMPLER_METHOD_MALA);
    CHECK(throws_status([&] { model.set_sampler("metropolis"); }, HATEBM_CONFIG));
    CHECK(model.mcmc_params().method == HATEBM_SAMPLER_METHOD_MALA);

    m.method = HATEBM_SAMPLER_METHOD_HMC;
    m.shadow_mh = false;
    m.adapt_steps = 8;  // longer than the run's 4 steps: refused, nothing changes
    m.adapt_mass = true;
    CHECK(throws_status([&] { model.set_mcmc(m); }, HATEBM_CONFIG));
    CHECK(model.mcmc_params().method == HATEBM_SAMPLER_METHOD_MALA);
    m.adapt_steps = 0;
    m.adapt_mass = false;
    m.leapfrog_steps = 2;
    model.set_mcmc(m);
    CHECK(model.mcmc_params().method == HATEBM_SAMPLER_METHOD_HMC && model.mcmc_params().leapfrog_steps == 2);

    hatebm_sample_params sp = hatebm::sample_default_params();
    sp.n = 8;
    std::vector<float> out(16, 0.0f);
    model.sample(sp, out);
    hatebm_mh_stats mhc{};
    CHECK_OK(hatebm_trained_model_mh_stats(model.get(), &mhc));
    const hatebm_mh_stats mh = model.mh_stats();
    CHECK(same_mh(mh, mhc) && mh.available);
    CHECK(same_floats(out, model.sample(sp)));

    hatebm_ais_params ap = hatebm::ais_default_params();
    ap.temperatures = 20;
    ap.chains = 16;
    ap.transitions = 1;
    ap.eps = 0.05f;
    hatebm_ais_result rc{};
    std::vector<double> wc(16);
    CHECK_OK(hatebm_trained_model_log_z(model.get(), &ap, false, &rc, wc.data(), wc.size()));
    const hatebm_ais_result r = model.log_z(ap, false);
    CHECK(r.log_z == rc.log_z && r.log_z_se == rc.log_z_se && r.ess == rc.ess);
    std::vector<double> w(16);
    CHECK(model.log_z(ap, false, w).log_z == rc.log_z && w == wc);
    CHECK(throws_status([&] { model.log_z(ap, false, {w.data(), 15}); }, HATEBM_INVALID_ARGUMENT));
    ap.chains = 1;
    CHECK(throws_status([&] { model.log_z(ap); }, HATEBM_CONFIG));
}

// Bank, CustomEnergy and CustomGenerator made in C, owned by C++, handed back.
int c_energy(const float *x, std::size_t n, std::size_t len, float *out_e, void *) {
    for (std::size_t b = 0; b < n; ++b) {
        out_e[b] = 0.5f * (x[b * len] * x[b * len] + x[b * len + 1] * x[b * len + 1]);
    }
    return 0;
}
int c_grad(const float *x, std::size_t n, std::size_t len, float *out_e, float *out_g, void *ud) {
    c_energy(x, n, len, out_e, ud);
    std::memcpy(out_g, x, n * len * sizeof(float));
    return 0;
}
int c_forward(const float *z, std::size_t n, std::size_t, float *out_x, std::size_t, void *) {
    for (std::size_t b = 0; b < n; ++b) {
        out_x[2 * b] = z[b];
        out_x[2 * b + 1] = -z[b];
    }
    return 0;
}
int c_vjp(const float *, const float *cot, std::size_t n, std::size_t, std::size_t, float *gz, void *) {
    for (std::size_t b = 0; b < n; ++b) {
        gz[b] = cot[2 * b] - cot[2 * b + 1];
    }
    return 0;
}

void test_adopt_and_release() {
    const std::size_t two = 2, one = 1;
    hatebm_energy_vtable vt = hatebm_energy_default_vtable();
    vt.energy = c_energy;
    vt.grad_x = c_grad;
    hatebm_energy *raw_e = nullptr;
    CHECK_OK(hatebm_energy_new(&vt, nullptr, &two, 1, &raw_e));
    hatebm::CustomEnergy e = hatebm::CustomEnergy::adopt(raw_e, {2});
    CHECK(e.get() == raw_e && e.sample_len() == 2);
    // The adopted C energy samples like the C++ one with the same formula.
    hatebm::CustomEnergy cpp = gauss();
    const hatebm_langevin_params p = neutral(10);
    std::vector<float> y1 = ramp(8, 0.1f), y2 = y1;
    hatebm::langevin(e, p, y1);
    hatebm::langevin(cpp, p, y2);
    CHECK(same_floats(y1, y2));

    hatebm_generator_vtable gvt = hatebm_generator_default_vtable();
    gvt.forward = c_forward;
    gvt.vjp_latent = c_vjp;
    hatebm_generator *raw_g = nullptr;
    CHECK_OK(hatebm_generator_new(&gvt, nullptr, &one, 1, &two, 1, &raw_g));
    hatebm::CustomGenerator g = hatebm::CustomGenerator::adopt(raw_g, {1}, {2});
    CHECK(g.get() == raw_g && g.latent_len() == 1 && g.sample_len() == 2);

    hatebm_bank *raw_b = nullptr;
    CHECK_OK(hatebm_bank_new(8, 1, 2, 0, &raw_b));
    hatebm::Bank bank = hatebm::Bank::adopt(raw_b, 1, 2);
    CHECK(bank.get() == raw_b && bank.capacity() == 8 && bank.latent_len() == 1);
    bank.init_from_generator(g, 4, 3);
    const std::vector<std::size_t> slots = {0, 3};
    const auto zx = bank.gather(slots);
    CHECK(zx.second[0] == zx.first[0] && zx.second[1] == -zx.first[0]);
    float z[2], x[4];
    bank.gather(slots, {z, 2}, {x, 4});
    CHECK(z[1] == zx.first[1] && x[3] == zx.second[3]);

    // Back to C: usable there, freed there, the C++ objects empty.
    hatebm_bank *b = bank.release();
    hatebm_generator *gr = g.release();
    hatebm_energy *er = e.release();
    CHECK(b == raw_b && gr == raw_g && er == raw_e && bank.get() == nullptr && g.get() == nullptr &&
          e.get() == nullptr);
    std::size_t cap = 0;
    CHECK_OK(hatebm_bank_capacity(b, &cap));
    CHECK(cap == 8);
    CHECK_OK(hatebm_bank_init_from_generator(b, gr, 4, 3));
    hatebm_bank_free(b);
    hatebm_generator_free(gr);
    CHECK_OK(hatebm_langevin_run_custom(er, nullptr, &p, nullptr, 0, y1.data(), 8, 4, nullptr));
    hatebm_energy_free(er);
    // A released C++ energy still owns its lambda through the C handle.
    hatebm_energy *from_cpp = cpp.release();
    CHECK_OK(hatebm_langevin_run_custom(from_cpp, nullptr, &p, nullptr, 0, y2.data(), 8, 4, nullptr));
    CHECK(same_floats(y1, y2));
    hatebm_energy_free(from_cpp);

    CHECK(throws_status([] { hatebm::Bank::adopt(nullptr, 1, 2); }, HATEBM_NULL_PARAMETER));
    CHECK(throws_status([] { hatebm::CustomEnergy::adopt(nullptr, {2}); }, HATEBM_NULL_PARAMETER));
    CHECK(throws_status([] { hatebm::CustomGenerator::adopt(nullptr, {1}, {2}); }, HATEBM_NULL_PARAMETER));
}

// A barrier for the two rank threads (C++17 has none).
class Barrier {
  public:
    explicit Barrier(std::size_t n) : n_(n) {}
    void wait() {
        std::unique_lock<std::mutex> lock(m_);
        const std::size_t gen = gen_;
        if (++waiting_ == n_) {
            waiting_ = 0;
            ++gen_;
            cv_.notify_all();
        } else {
            cv_.wait(lock, [&] { return gen != gen_; });
        }
    }

  private:
    std::mutex m_;
    std::condition_variable cv_;
    std::size_t n_, waiting_ = 0, gen_ = 0;
};

std::vector<float> fingerprint(const hatebm::Session &s) {
    return s.energy(ramp(16, 0.1f), 8);
}

void test_distributed(const std::string &ck) {
    constexpr std::size_t kRanks = 2, kSteps = 3;
    std::vector<float> one;
    {
        hatebm::Session s(config("one"));
        for (std::size_t i = 0; i < kSteps; ++i) {
            s.step();
        }
        one = fingerprint(s);
    }
    Barrier barrier(kRanks);
    std::vector<std::vector<unsigned char>> bufs(kRanks);
    std::vector<std::vector<float>> got(kRanks);
    std::vector<std::string> errors(kRanks);
    auto alive = std::make_shared<int>(0);  // held by the callables while their session lives
    std::vector<std::thread> threads;
    for (std::size_t r = 0; r < kRanks; ++r) {
        threads.emplace_back([&, r] {
            try {
                hatebm::Comm comm;
                comm.rank = r;
                comm.size = kRanks;
                comm.all_gather = [&, r, alive](const void *send, std::size_t count, void *recv) {
                    const auto *p = static_cast<const unsigned char *>(send);
                    bufs[r].assign(p, p + count);
                    barrier.wait();
                    for (std::size_t k = 0; k < kRanks; ++k) {
                        std::memcpy(static_cast<unsigned char *>(recv) + k * count, bufs[k].data(), count);
                    }
                    barrier.wait();
                };
                hatebm::Session s = hatebm::Session::distributed(config(r == 0 ? "rank0" : "rank1"),
                                                                 std::move(comm));
                for (std::size_t i = 0; i < kSteps; ++i) {
                    s.step();
                }
                got[r] = fingerprint(s);
            } catch (const std::exception &e) {
                errors[r] = e.what();
            }
        });
    }
    for (std::thread &t : threads) {
        t.join();
    }
    for (std::size_t r = 0; r < kRanks; ++r) {
        CHECK(errors[r].empty());
        CHECK(same_floats(got[r], one));
        if (!errors[r].empty()) {
            std::fprintf(stderr, "rank %zu: %s\n", r, errors[r].c_str());
        }
    }
    CHECK(alive.use_count() == 1);  // both sessions freed their callables

    // A throwing collective fails the call with HATEBM_DISTRIBUTED and its
    // text; the callables are destroyed by the wrapper (no session was made).
    hatebm::Comm bad;
    bad.size = 2;
    bad.all_gather = [alive](const void *, std::size_t, void *) {
        throw std::runtime_error("the interconnect is down");
    };
    try {
        hatebm::Session::distributed(config("bad"), std::move(bad));
        CHECK(false);
    } catch (const hatebm::Error &e) {
        CHECK(e.status() == HATEBM_DISTRIBUTED);
        CHECK(std::string(e.what()).find("the interconnect is down") != std::string::npos);
    }
    CHECK(alive.use_count() == 1);
    hatebm::Comm no_gather;
    no_gather.size = 2;
    CHECK(throws_status([&] { hatebm::Session::distributed(config("bad"), no_gather); },
                        HATEBM_INVALID_ARGUMENT));

    // Rank 0 of 1: a plain session, also resumed.
    hatebm::Session r = hatebm::Session::resume_distributed(ck, hatebm::Comm{});
    hatebm_session *raw = nullptr;
    CHECK_OK(hatebm_session_resume(ck.c_str(), nullptr, &raw));
    hatebm::Session plain = hatebm::Session::adopt(raw);
    CHECK(r.iteration() == plain.iteration() && r.iteration() == 1);
    CHECK(same_floats(fingerprint(r), fingerprint(plain)));
    hatebm::Config c = hatebm::Config::from_checkpoint(ck);
    c.set("train.steps", "9");
    CHECK(hatebm::Session::resume_distributed(ck, hatebm::Comm{}, &c).config_toml().find("steps = 9") !=
          std::string::npos);
    CHECK(throws_status([&] { hatebm::Session::resume_distributed(ck + ".missing", hatebm::Comm{}); },
                        HATEBM_IO));
#if !defined(HATEBM_WITH_MPI)
    CHECK(throws_status([] { hatebm::Session::mpi(config("mpi"), 0); }, HATEBM_DISTRIBUTED));
#endif
}

}  // namespace

int main() {
    try {
        hatebm::check_abi();
        test_defaults();
        test_custom_langevin();
        test_adopt_and_release();
        char path[512];
        const std::string ck = test_path(path, sizeof path, "cpp_sampling", "ck.safetensors");
        {
            hatebm::Session s(config("session"));
            test_session(s);
            s.save_checkpoint(ck);
        }
        test_trained_model(ck);
        test_distributed(ck);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "cpp_sampling: unexpected exception: %s\n", e.what());
        return 1;
    }
    return check_summary("cpp_sampling");
}
