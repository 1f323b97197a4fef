// The C++ wrapper's additions of issue 17, item 5, one test each:
// hatebm::first_non_finite (vector and pointer + length), hatebm::log_set /
// log_set_level / log_clear, Config::from_checkpoint, adopting and releasing
// raw C handles (Config, Session, TrainedModel), and Session::train returning
// false for a normal cancel; items 7 and 4 through the wrapper: the iteration
// counters follow one convention, and a string getter (a size query, then the
// copy) leaves the last error untouched.
#include <hatebm.hpp>

#include <cmath>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "check.h"

namespace {

// check.h's C helper makes the config; adopting it is itself under test.
hatebm::Config tiny(const char *out) {
    const char *toml =
        "preset = \"toy2d\"\nseed = 6\n"
        "[data]\nn = 128\n"
        "[model.energy]\ndims = [2, 8, 1]\n"
        "[model.generator]\ndims = [2, 8, 2]\n"
        "[train]\nbatch_size = 8\nbank_size = 32\n"
        "[langevin]\nsteps = 2\n"
        "[output]\nprogress = \"never\"\nplot = false\n";
    return hatebm::Config::adopt(test_config(toml, "cpp_more", out));
}

void test_first_non_finite() {
    std::vector<float> x = {1.0f, 2.0f, 3.0f};
    CHECK(hatebm::first_non_finite(x) == -1);
    x[2] = std::nanf("");
    CHECK(hatebm::first_non_finite(x) == 2);
    CHECK(hatebm::first_non_finite(x.data(), 2) == -1);  // pointer + length: only the first 2
    CHECK(hatebm::first_non_finite(nullptr, 0) == -1);
    try {
        hatebm::first_non_finite(nullptr, 3);
        CHECK(false);
    } catch (const hatebm::Error &e) {
        CHECK(e.status() == HATEBM_NULL_PARAMETER);
    }
}

void test_logging() {
    struct Seen {
        int count = 0;
        hatebm_log_level level = HATEBM_LOG_LEVEL_OFF;
        std::string message;
    };
    auto seen = std::make_shared<Seen>();
    hatebm::log_set([seen](const hatebm::LogRecord &r) {
        seen->count++;
        seen->level = r.level;
        seen->message = r.message;
    });
    CHECK(seen.use_count() == 2);  // the wrapper holds the lambda
    // Default WARN: a NULL argument is delivered, a numeric failure (DEBUG) is not.
    float bad[1] = {INFINITY};
    hatebm_check_finite(nullptr, 1, nullptr);
    hatebm_check_finite(bad, 1, nullptr);
    CHECK(seen->count == 1 && seen->level == HATEBM_LOG_LEVEL_WARN);
    CHECK(seen->message.find("argument `data` is NULL") != std::string::npos);
    hatebm::log_set_level(HATEBM_LOG_LEVEL_DEBUG);
    hatebm_check_finite(bad, 1, nullptr);
    CHECK(seen->count == 2 && seen->level == HATEBM_LOG_LEVEL_DEBUG);

    // A throwing logger drops its record and nothing escapes.
    int thrown = 0;
    hatebm::log_set([&thrown](const hatebm::LogRecord &) {
        ++thrown;
        throw std::runtime_error("logger failed");
    });
    CHECK(seen.use_count() == 1);  // the replaced lambda was destroyed
    CHECK(hatebm_check_finite(nullptr, 1, nullptr) == HATEBM_NULL_PARAMETER);
    CHECK(thrown == 1);

    hatebm::log_clear();
    hatebm_check_finite(nullptr, 1, nullptr);
    CHECK(thrown == 1 && seen->count == 2);
    hatebm::log_set_level(HATEBM_LOG_LEVEL_WARN);
}

void test_train_cancel_is_not_an_error() {
    hatebm::Session s(tiny("cancel"));
    int calls = 0;
    CHECK(!s.train(5, [&](const hatebm_progress &) { return ++calls < 2; }));
    CHECK(calls == 2 && s.iteration() == 2);
    CHECK(s.train(2, [](const hatebm_progress &) { return true; }));
    CHECK(s.iteration() == 4);
}

void test_config_from_checkpoint(const std::string &ck) {
    hatebm::Config c = hatebm::Config::from_checkpoint(ck);
    CHECK(c.to_toml().find("seed = 6") != std::string::npos);
    c.set("train.steps", "7");
    hatebm::Session r = hatebm::Session::resume(ck, &c);
    CHECK(r.iteration() == 1);
    CHECK(r.config_toml().find("steps = 7") != std::string::npos);
    try {
        hatebm::Config::from_checkpoint(ck + ".missing");
        CHECK(false);
    } catch (const hatebm::Error &e) {
        CHECK(e.status() == HATEBM_IO);
    }
}

void test_adopt_and_release(const std::string &ck) {
    // Config: made in C, owned by C++, handed back to C.
    hatebm_config *raw_cfg = nullptr;
    CHECK(hatebm_config_new(&raw_cfg) == HATEBM_OK);
    hatebm::Config cfg = hatebm::Config::adopt(raw_cfg);
    CHECK(cfg.get() == raw_cfg);
    cfg.set("seed", "11");
    hatebm_config *back = cfg.release();
    CHECK(back == raw_cfg && cfg.get() == nullptr);
    CHECK(hatebm_config_set(back, "langevin.steps", "4") == HATEBM_OK);
    hatebm_config_free(back);

    // Session: resumed in C, used through the wrapper, released to C.
    hatebm_session *raw = nullptr;
    CHECK(hatebm_session_resume(ck.c_str(), nullptr, &raw) == HATEBM_OK);
    hatebm::Session s = hatebm::Session::adopt(raw);
    CHECK(s.get() == raw && s.iteration() == 1);
    s.step();
    hatebm_session *again = s.release();
    CHECK(again == raw && s.get() == nullptr);
    std::uint64_t it = 0;
    CHECK(hatebm_session_iteration(again, &it) == HATEBM_OK && it == 2);
    hatebm_session_free(again);

    // TrainedModel likewise.
    hatebm_trained_model *raw_m = nullptr;
    CHECK(hatebm_trained_model_load(ck.c_str(), nullptr, &raw_m) == HATEBM_OK);
    hatebm::TrainedModel m = hatebm::TrainedModel::adopt(raw_m);
    CHECK(m.iteration() == 1 && m.sample_len() == 2);
    hatebm_trained_model_free(m.release());

    // NULL is refused, not adopted.
    try {
        hatebm::Session::adopt(nullptr);
        CHECK(false);
    } catch (const hatebm::Error &e) {
        CHECK(e.status() == HATEBM_NULL_PARAMETER);
    }
}

}  // namespace

void test_counters_and_quiet_size_queries() {
    hatebm::Session s(tiny("counters"));
    CHECK(s.iteration() == 0);
    hatebm_step_stats st = s.step();
    CHECK(st.iterations_done == 1 && s.iteration() == 1);
    std::vector<std::uint64_t> seen, in_stats;
    bool finished = s.train(3, [&](const hatebm_progress &p) {
        seen.push_back(p.iterations_done);
        in_stats.push_back(p.stats.iterations_done);
        return true;
    });
    CHECK(finished);
    CHECK((seen == std::vector<std::uint64_t>{2, 3, 4}) && seen == in_stats);
    CHECK(s.last_stats().iterations_done == 4 && s.iteration() == 4);
    // A failure sets the last error; the getters' size queries do not touch it.
    CHECK(hatebm_config_set(nullptr, "seed", "1") == HATEBM_NULL_PARAMETER);
    const std::string before = hatebm::last_error_message();
    CHECK(!s.backend_name().empty());
    CHECK(!s.config_toml().empty());
    CHECK(hatebm::last_error_message() == before);
}

int main() {
    try {
        hatebm::check_abi();
        test_counters_and_quiet_size_queries();
        test_first_non_finite();
        test_logging();
        test_train_cancel_is_not_an_error();
        char path[512];
        const std::string ck = test_path(path, sizeof path, "cpp_more", "ck.safetensors");
        {
            hatebm::Session s(tiny("ck"));
            s.step();
            s.save_checkpoint(ck);
        }
        test_config_from_checkpoint(ck);
        test_adopt_and_release(ck);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "cpp_more: unexpected exception: %s\n", e.what());
        return 1;
    }
    return check_summary("cpp_more");
}
