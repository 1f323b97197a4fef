/*
 * A minimal program that uses an installed libhatebm the way a harness would.
 * scripts/c-tests.sh builds it through pkg-config (shared and static) and
 * through CMake (find_package and pkg_check_modules) against a scratch install.
 */
#include <stdio.h>
#include <string.h>

#include <hatebm.h>

int main(void) {
    const float ok[3] = {1.0f, 2.0f, 3.0f};
    size_t bad = 0;

    if (hatebm_abi_version() != HATEBM_ABI_VERSION ||
        strcmp(hatebm_version(), HATEBM_VERSION_STRING) != 0) {
        fprintf(stderr, "consumer: header %s but library %s\n", HATEBM_VERSION_STRING,
                hatebm_version());
        return 1;
    }
    if (hatebm_check_finite(ok, 3, &bad) != HATEBM_OK || bad != 3) {
        fprintf(stderr, "consumer: check_finite: %s\n", hatebm_last_error_message());
        return 1;
    }
    if (hatebm_check_finite(NULL, 1, NULL) != HATEBM_NULL_PARAMETER ||
        strstr(hatebm_last_error_message(), "`data`") == NULL) {
        fprintf(stderr, "consumer: NULL not reported\n");
        return 1;
    }
    printf("consumer: libhatebm %s OK\n", hatebm_version());
    return 0;
}
