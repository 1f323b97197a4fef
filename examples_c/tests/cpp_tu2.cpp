// Second translation unit including hatebm.hpp: linking it with cpp_main.cpp
// proves the wrapper is ODR-safe (everything inline) when used in many TUs.
#include "hatebm.hpp"

#include <string>

// Uses the wrapper from this TU and returns the label it round-tripped.
std::string tu2_round_trip(const std::string &label) {
    hatebm::TestObject obj(label);
    obj.push({1.0f, 2.0f});
    return obj.label();
}

// Returns the status a hatebm::Error carried, or HATEBM_OK if none was thrown.
hatebm_status tu2_status_of_null_handle_push() {
    try {
        hatebm::check(hatebm_test_handle_push(nullptr, nullptr, 0));
    } catch (const hatebm::Error &e) {
        return e.status();
    }
    return HATEBM_OK;
}
