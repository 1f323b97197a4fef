/* Minimal assertion helpers for the C-ABI tests (C11 and C++17). */
#ifndef HATEBM_TEST_CHECK_H
#define HATEBM_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hatebm.h"

static int check_passed_;
static int check_failed_;

static inline void check_report_(int ok, const char *file, int line, const char *what) {
    if (ok) {
        check_passed_++;
    } else {
        check_failed_++;
        fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, what);
    }
}

#define CHECK(cond) check_report_((cond) ? 1 : 0, __FILE__, __LINE__, #cond)

/* Checks a call's status; on mismatch prints both names and the last error. */
#define CHECK_STATUS(expr, want)                                                          \
    do {                                                                                  \
        hatebm_status check_st_ = (expr);                                                 \
        if (check_st_ == (want)) {                                                        \
            check_passed_++;                                                              \
        } else {                                                                          \
            check_failed_++;                                                              \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s (last error: \"%s\")\n",  \
                    __FILE__, __LINE__, #expr, hatebm_status_str((int)check_st_),         \
                    hatebm_status_str((int)(want)), hatebm_last_error_message());        \
        }                                                                                 \
    } while (0)

#define CHECK_OK(expr) CHECK_STATUS(expr, HATEBM_OK)

/* Checks that a C string contains a substring. */
#define CHECK_CONTAINS(haystack, needle)                                                  \
    do {                                                                                  \
        const char *check_h_ = (haystack);                                                \
        if (check_h_ != NULL && strstr(check_h_, (needle)) != NULL) {                     \
            check_passed_++;                                                              \
        } else {                                                                          \
            check_failed_++;                                                              \
            fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__, \
                    check_h_ ? check_h_ : "(null)", (needle));                            \
        }                                                                                 \
    } while (0)

#define CHECK_STREQ(a, b)                                                                 \
    do {                                                                                  \
        const char *check_a_ = (a);                                                       \
        const char *check_b_ = (b);                                                       \
        if (check_a_ != NULL && check_b_ != NULL && strcmp(check_a_, check_b_) == 0) {    \
            check_passed_++;                                                              \
        } else {                                                                          \
            check_failed_++;                                                              \
            fprintf(stderr, "%s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__,              \
                    check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)");      \
        }                                                                                 \
    } while (0)

/* A scratch file path: "$HATEBM_TEST_TMPDIR/<test>-<name>" (default directory
 * /tmp). Programs use distinct <test> prefixes, so they may run in parallel. */
static inline const char *test_path(char *buf, size_t cap, const char *test, const char *name) {
    const char *dir = getenv("HATEBM_TEST_TMPDIR");
    snprintf(buf, cap, "%s/hatebm-%s-%s", (dir != NULL && *dir != '\0') ? dir : "/tmp", test, name);
    return buf;
}

/* A config from a TOML document with output.dir = test_path(test, out), or
 * NULL if the document does not parse. */
static inline hatebm_config *test_config(const char *toml, const char *test, const char *out) {
    char dir[512], quoted[600];
    hatebm_config *cfg = NULL;
    if (hatebm_config_from_toml(toml, &cfg) != HATEBM_OK) {
        return NULL;
    }
    snprintf(quoted, sizeof quoted, "\"%s\"", test_path(dir, sizeof dir, test, out));
    if (hatebm_config_set(cfg, "output.dir", quoted) != HATEBM_OK) {
        hatebm_config_free(cfg);
        return NULL;
    }
    return cfg;
}

/* Checks that two float arrays are equal bit for bit. */
#define CHECK_SAME_FLOATS(a, b, n) CHECK(memcmp((a), (b), (n) * sizeof(float)) == 0)

/* Prints the closing line and returns the exit code. */
static inline int check_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, check_passed_, check_failed_);
    return check_failed_ == 0 ? 0 : 1;
}

#ifdef __cplusplus
/* C++ tests: whether `f()` throws hatebm::Error with status `want` (needs
 * hatebm.hpp, included before this header). */
#ifdef HATEBM_HPP
template <typename F>
static inline bool throws_status(F &&f, hatebm_status want) {
    try {
        f();
    } catch (const hatebm::Error &e) {
        return e.status() == want;
    }
    return false;
}
#endif
#endif

#endif /* HATEBM_TEST_CHECK_H */
