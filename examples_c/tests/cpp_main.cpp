// The C++17 wrapper (hatebm.hpp): exceptions carry status and message, handles
// own and free, copy-outs size themselves, callbacks keep C++ exceptions on the
// C++ side. Linked with cpp_tu2.cpp (second TU including the same header).
#include "hatebm.hpp"
#include "check.h"

#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

std::string tu2_round_trip(const std::string &label);
hatebm_status tu2_status_of_null_handle_push();

static void test_errors() {
    bool thrown = false;
    try {
        hatebm::check(hatebm_check_finite(nullptr, 3, nullptr));
    } catch (const hatebm::Error &e) {
        thrown = true;
        CHECK(e.status() == HATEBM_NULL_PARAMETER);
        CHECK_STREQ(e.status_name(), "HATEBM_NULL_PARAMETER");
        CHECK_CONTAINS(e.what(), "HATEBM_NULL_PARAMETER: hatebm_check_finite: argument `data`");
    }
    CHECK(thrown);
    hatebm::check(HATEBM_OK);  // no throw
    CHECK(tu2_status_of_null_handle_push() == HATEBM_NULL_PARAMETER);

    thrown = false;
    try {
        hatebm::TestObject bad("");
    } catch (const hatebm::Error &e) {
        thrown = e.status() == HATEBM_INVALID_ARGUMENT;
    }
    CHECK(thrown);

    thrown = false;
    try {
        hatebm::TestObject obj("numbers");
        obj.push({1.0f, std::nanf("")});
    } catch (const hatebm::Error &e) {
        thrown = e.status() == HATEBM_NUMERIC;
    }
    CHECK(thrown);
}

static void test_versions() {
    CHECK(hatebm::version() == HATEBM_VERSION_STRING);
    hatebm::check_abi();
}

static void test_handles() {
    hatebm::TestHandle h;
    CHECK(!h);
    hatebm::check(hatebm_test_handle_new("raw", h.out()));
    CHECK(static_cast<bool>(h));

    hatebm::TestHandle moved(std::move(h));
    CHECK(!h && moved);
    h = std::move(moved);
    CHECK(h && !moved);

    // A failing constructor leaves the handle empty (outputs only on success).
    CHECK(hatebm_test_handle_new(nullptr, h.out()) == HATEBM_NULL_PARAMETER);
    CHECK(!h);

    hatebm_test_handle *raw = nullptr;
    hatebm::check(hatebm_test_handle_new("released", &raw));
    h.reset(raw);
    hatebm_test_handle_free(h.release());
    CHECK(!h);

    hatebm::TestObject obj("h\xC3\xA9llo");
    obj.push({1.0f, 2.0f, 3.5f});
    CHECK(obj.label() == "h\xC3\xA9llo");
    CHECK((obj.values() == std::vector<float>{1.0f, 2.0f, 3.5f}));
    CHECK(obj.sum() == 6.5);
    CHECK(tu2_round_trip(std::string(300, 'x')) == std::string(300, 'x'));

    hatebm::TestObject empty("empty");
    CHECK(empty.values().empty());
}

static void test_callbacks() {
    hatebm::TestObject obj("callbacks");
    std::size_t seen = 0;
    CHECK(obj.run(4, [&](std::size_t) { return ++seen > 0; }) == 4);
    CHECK(seen == 4);

    // Returning false cancels: hatebm::Error with HATEBM_CANCELLED.
    bool cancelled = false;
    try {
        obj.run(10, [](std::size_t step) { return step < 2; });
    } catch (const hatebm::Error &e) {
        cancelled = e.status() == HATEBM_CANCELLED;
    }
    CHECK(cancelled);

    // A C++ exception in the callback cancels the run and is rethrown as itself.
    bool rethrown = false;
    try {
        obj.run(10, [](std::size_t step) -> bool {
            if (step == 1) {
                throw std::runtime_error("from the callback");
            }
            return true;
        });
    } catch (const hatebm::Error &) {
        rethrown = false;
    } catch (const std::runtime_error &e) {
        rethrown = std::string(e.what()) == "from the callback";
    }
    CHECK(rethrown);
    // 4 + 3 (0..2, cancelled at 2) + 2 (0..1, threw at 1)
    CHECK(obj.values().size() == 9);
}

int main() {
    test_errors();
    test_versions();
    test_handles();
    test_callbacks();
    return check_summary("cpp_wrapper");
}
