// The C++ wrapper over the training/sampling API: Config (copy, chain, errors
// as exceptions), Session (step, train with a cancelling lambda, an exception
// thrown in the progress lambda, sampling, checkpoint + resume), CustomEnergy /
// CustomGenerator from lambdas, Bank, and move semantics.
#include <hatebm.hpp>

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "check.h"

namespace {

hatebm::Config tiny() {
    char dir[512];
    hatebm::Config c = hatebm::Config::preset("toy2d");
    c.set("seed", "4")
        .set("data.n", "128")
        .set("model.energy.dims", "[2, 8, 1]")
        .set("model.generator.dims", "[2, 8, 2]")
        .set("train.batch_size", "8")
        .set("train.bank_size", "32")
        .set("langevin.steps", "2")
        .set("output.progress", "never")
        .set("output.plot", "false")
        .set("output.dir", std::string("\"") + test_path(dir, sizeof dir, "cpp_api", "out") + "\"");
    return c;
}

void test_config() {
    hatebm::Config a = tiny();
    hatebm::Config b = a;  // deep copy
    b.set("seed", "5");
    CHECK(a.to_toml().find("seed = 4") != std::string::npos);
    CHECK(b.to_toml().find("seed = 5") != std::string::npos);
    try {
        a.set("langevin.stepz", "3");
        CHECK(false);
    } catch (const hatebm::Error &e) {
        CHECK(e.status() == HATEBM_CONFIG);
        CHECK_CONTAINS(e.what(), "did you mean `steps`");
    }
    hatebm::Config moved = std::move(b);
    CHECK(moved.get() != nullptr);
}

void test_session() {
    hatebm::Session s(tiny());
    CHECK(s.backend_name() == "cpu");
    CHECK(s.sample_shape() == std::vector<std::size_t>{2});
    CHECK(s.latent_len() == 2 && s.sample_len() == 2 && s.image_shape().empty());
    const hatebm_step_stats st = s.step();
    CHECK(st.iterations_done == 1 && s.iteration() == 1 && std::isfinite(st.loss_ebm));
    CHECK(s.bank_size() == 32);

    // Cancel from the lambda is a normal outcome: train returns false (no
    // exception) after one more complete iteration.
    int calls = 0;
    const bool done = s.train(10, [&](const hatebm_progress &p) {
        ++calls;
        return p.iterations_done < 2;
    });
    CHECK(!done && calls == 1 && s.iteration() == 2);

    // An exception in the lambda cancels the run and comes back out.
    try {
        s.train(10, [](const hatebm_progress &) -> bool { throw std::logic_error("stop here"); });
        CHECK(false);
    } catch (const std::logic_error &e) {
        CHECK(std::string(e.what()) == "stop here");
    }
    CHECK(s.iteration() == 3);

    // Re-entering the session from its own callback is HATEBM_MISUSE (issue 17):
    // the inner step throws, the outer train goes on, the iteration count is
    // the train call's own.
    int misuse = 0;
    s.train(2, [&](const hatebm_progress &) {
        try {
            s.step();
        } catch (const hatebm::Error &e) {
            misuse += e.status() == HATEBM_MISUSE;
        }
        return true;
    });
    CHECK(misuse == 2 && s.iteration() == 5);
    // The wrapper's string getters size-query first; that leaves the last error alone.
    CHECK(std::string(hatebm_last_error_message()).find("already in use") != std::string::npos);
    CHECK(s.backend_name() == "cpu");
    CHECK(std::string(hatebm_last_error_message()).find("already in use") != std::string::npos);

    hatebm_sample_params sp = hatebm::sample_default_params();
    sp.n = 6;
    const std::vector<float> x = s.sample(sp);
    CHECK(x.size() == 12);
    const std::vector<float> e = s.energy(x, 6);
    const auto eg = s.energy_grad(x, 6);
    CHECK(e == eg.first && eg.second.size() == 12);

    char ck[512];
    test_path(ck, sizeof ck, "cpp_api", "ck.safetensors");
    s.save_checkpoint(ck);
    hatebm::Session r = hatebm::Session::resume(ck);
    CHECK(r.iteration() == s.iteration());
    CHECK(r.sample(sp) == x);
    // The trained model alone samples the same numbers (issue 17, item 1).
    hatebm::TrainedModel m(ck);
    CHECK(m.iteration() == s.iteration() && m.sample_len() == 2);
    CHECK(m.sample_shape() == std::vector<std::size_t>{2} && m.image_shape().empty());
    CHECK(m.sample(sp) == x);
    CHECK(m.energy(x, false) == s.energy(x, 6));
    const auto sc = m.scores(x, false);
    CHECK(sc.first == m.energy(x, false) && sc.second.size() == 6);
    std::remove(ck);
    try {
        hatebm::TrainedModel missing("/nonexistent/ck.safetensors");
        CHECK(false);
    } catch (const hatebm::Error &err) {
        CHECK(err.status() == HATEBM_IO);
    }

    try {
        hatebm::Session::resume("/nonexistent/ck.safetensors");
        CHECK(false);
    } catch (const hatebm::Error &err) {
        CHECK(err.status() == HATEBM_IO);
    }
}

void test_custom_models() {
    // U(x) = |x - 1|^2 / 2, from a lambda capturing state.
    int calls = 0;
    hatebm::CustomEnergy energy(
        {2},
        [&calls](const float *x, std::size_t n, std::size_t len, float *out_e, float *out_g) {
            ++calls;
            for (std::size_t b = 0; b < n; ++b) {
                float s = 0.0f;
                for (std::size_t j = 0; j < len; ++j) {
                    const float d = x[b * len + j] - 1.0f;
                    s += 0.5f * d * d;
                    if (out_g != nullptr) {
                        out_g[b * len + j] = d;
                    }
                }
                out_e[b] = s;
            }
        },
        "shifted bowl");
    hatebm::CustomEnergy moved = std::move(energy);  // the callable moves with it
    const hatebm_langevin_params neutral = hatebm::langevin_neutral_params();
    CHECK(neutral.temperature == 1.0f && neutral.clip_res == 0.0f && neutral.steps == 500);
    hatebm_langevin_params p = hatebm::langevin_default_params();
    CHECK(p.temperature != neutral.temperature);
    p.steps = 200;
    p.temperature = 1.0f;
    p.eps_res = 1.0f;  // drift eps^2/2 = 0.5 per step
    p.clip_res = 0.0f;
    p.noise = false;  // gradient descent: converges to the minimum
    std::vector<float> y(8, 0.0f);
    const hatebm_langevin_stats st = hatebm::langevin(moved, p, y);
    CHECK(calls == 200 && st.steps == 200);
    bool at_min = true;
    for (float v : y) {
        at_min = at_min && std::fabs(v - 1.0f) < 1e-3f;
    }
    CHECK(at_min);

    // A generator from two lambdas, and a bank initialised from it.
    hatebm::CustomGenerator gen(
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
    hatebm::Bank bank(16, 1, 2);
    bank.init_from_generator(gen, 4, 9);
    CHECK(bank.capacity() == 16);
    const std::vector<std::size_t> slots = bank.draw_slots(9, 0, 5);
    auto zx = bank.gather(slots);
    CHECK(zx.first.size() == 5 && zx.second.size() == 10);
    CHECK(zx.second[0] == zx.first[0] && zx.second[1] == -zx.first[0]);
    std::vector<float> z = zx.first;
    std::vector<float> yy(10, 0.0f);
    p.update_latents = true;
    p.eps_latent = 0.05f;
    p.eps_res = 0.1f;
    p.steps = 5;
    hatebm::langevin(moved, gen, p, z, yy);
    CHECK(z != zx.first);
    bank.overwrite(slots, z, yy);
    CHECK(bank.gather(slots).first == z);

    // A throwing generator inside a bank init: rethrown, bank unchanged.
    hatebm::CustomGenerator bad(
        {1}, {2},
        [](const float *, std::size_t, std::size_t, float *, std::size_t) {
            throw std::runtime_error("generator broke");
        },
        [](const float *, const float *, std::size_t, std::size_t, std::size_t, float *) {});
    try {
        bank.init_from_generator(bad, 4, 1);
        CHECK(false);
    } catch (const std::runtime_error &e) {
        CHECK(std::string(e.what()) == "generator broke");
    }
    CHECK(bank.gather(slots).first == z);
}

}  // namespace

int main() {
    try {
        hatebm::check_abi();
        test_config();
        test_session();
        test_custom_models();
    } catch (const std::exception &e) {
        std::fprintf(stderr, "cpp_api: unexpected exception: %s\n", e.what());
        return 1;
    }
    return check_summary("cpp_api");
}
