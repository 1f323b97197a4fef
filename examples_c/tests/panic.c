/*
 * The panic boundary: a Rust panic inside any entry point comes back as
 * HATEBM_PANIC (or a getter's documented default) with the payload in the last
 * error, and the process, and the library, keep working.
 */
#include <stddef.h>

#include "check.h"

int main(void) {
    int round;

    CHECK_STATUS(hatebm_test_panic(0), HATEBM_PANIC);
    CHECK_CONTAINS(hatebm_last_error_message(), "hatebm_test_panic: panic inside libhatebm");
    CHECK_CONTAINS(hatebm_last_error_message(), "test panic (literal)");

    CHECK_STATUS(hatebm_test_panic(1), HATEBM_PANIC);
    CHECK_CONTAINS(hatebm_last_error_message(), "test panic (formatted 1)");

    CHECK_STATUS(hatebm_test_panic(2), HATEBM_PANIC);
    CHECK_CONTAINS(hatebm_last_error_message(), "non-string panic payload");

    CHECK_OK(hatebm_test_panic(3));

    /* Infallible getter: documented default (NULL) on panic. */
    CHECK(hatebm_test_panic_getter(true) == NULL);
    CHECK_CONTAINS(hatebm_last_error_message(), "hatebm_test_panic_getter");
    CHECK_STREQ(hatebm_test_panic_getter(false), "ok");

    /* Repeated panics neither leak nor wedge anything (Valgrind/ASan watch this). */
    for (round = 0; round < 20; round++) {
        CHECK_STATUS(hatebm_test_panic(round % 3), HATEBM_PANIC);
    }

    /* The library still works afterwards. */
    {
        const float ok[3] = {1.0f, 2.0f, 3.0f};
        hatebm_test_handle *h = NULL;
        double sum = 0.0;
        CHECK_OK(hatebm_check_finite(ok, 3, NULL));
        CHECK_OK(hatebm_test_handle_new("after panics", &h));
        CHECK_OK(hatebm_test_handle_push(h, ok, 3));
        CHECK_OK(hatebm_test_handle_sum(h, &sum));
        CHECK(sum == 6.0);
        hatebm_test_handle_free(h);
    }
    return check_summary("panic");
}
