/*
 * The evaluation metrics through the C ABI (hatebm_metrics_*): values with
 * closed forms (a shifted copy's Frechet distance is d * c^2, identical sets
 * give precision = recall = 1, samples on half the modes give KL = ln 2, a
 * hand-computed energy distance), then the ABI rules: NULL pointers, buffer
 * lengths, non-finite inputs, bad parameters, misaligned and overlapping
 * buffers -- every failure leaves the out-params untouched. Small sets, so it
 * also runs quickly under Valgrind.
 */
#include <math.h>
#include <stdint.h>

#include "check.h"

#define N 60
#define D 4

/* A deterministic pseudo-random value in [-1, 1) (xorshift32). */
static float next_uniform(uint32_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return (float)((double)*s / 2147483648.0 - 1.0);
}

static int close_to(double a, double b, double tol) { return fabs(a - b) <= tol; }

static void frechet(void) {
    float a[N * D], b[N * D];
    uint32_t s = 12345u;
    const double c = 0.5;
    for (size_t i = 0; i < N * D; i++) {
        a[i] = next_uniform(&s);
        b[i] = a[i] + (float)c;
    }
    double fd = -1.0;
    CHECK_OK(hatebm_metrics_frechet(a, N * D, N, a, N * D, N, D, &fd));
    CHECK(fd >= 0.0 && fd < 1e-9);
    /* Same covariance, mean shifted by c in every coordinate: d * c^2. */
    CHECK_OK(hatebm_metrics_frechet(a, N * D, N, b, N * D, N, D, &fd));
    CHECK(close_to(fd, D * c * c, 1e-6));
    /* In a PCA space with all components the shift is kept exactly ... */
    CHECK_OK(hatebm_metrics_frechet_pca(a, N * D, N, b, N * D, N, D, D, 7, &fd));
    CHECK(close_to(fd, D * c * c, 1e-5));
    /* ... with fewer, only its projection: between 0 and d * c^2. */
    double fd2 = -1.0;
    CHECK_OK(hatebm_metrics_frechet_pca(a, N * D, N, b, N * D, N, D, 2, 7, &fd2));
    CHECK(fd2 > 0.0 && fd2 < fd);
    /* Deterministic given the seed. */
    double fd3 = -1.0;
    CHECK_OK(hatebm_metrics_frechet_pca(a, N * D, N, b, N * D, N, D, 2, 7, &fd3));
    CHECK(fd2 == fd3);
}

static void precision_recall(void) {
    float a[N * D], far_away[N * D];
    uint32_t s = 777u;
    for (size_t i = 0; i < N * D; i++) {
        a[i] = next_uniform(&s);
        far_away[i] = a[i] + 100.0f;
    }
    double p = -1.0, r = -1.0;
    CHECK_OK(hatebm_metrics_precision_recall(a, N * D, N, a, N * D, N, D, 3, &p, &r));
    CHECK(p == 1.0 && r == 1.0);
    CHECK_OK(hatebm_metrics_precision_recall(a, N * D, N, far_away, N * D, N, D, 3, &p, &r));
    CHECK(p == 0.0 && r == 0.0);
    /* A collapsed generator: every sample on one real point. */
    float collapsed[N * D];
    for (size_t i = 0; i < N * D; i++) collapsed[i] = a[i % D];
    CHECK_OK(hatebm_metrics_precision_recall(a, N * D, N, collapsed, N * D, N, D, 3, &p, &r));
    CHECK(p == 1.0 && r < 0.2);
}

static void mode_coverage(void) {
    /* Eight modes on a ring of radius 2; 40 samples exactly on modes 0, 2, 4, 6. */
    float centres[16];
    for (int m = 0; m < 8; m++) {
        centres[2 * m] = (float)(2.0 * cos(m * 0.7853981633974483));
        centres[2 * m + 1] = (float)(2.0 * sin(m * 0.7853981633974483));
    }
    float x[80];
    for (int i = 0; i < 40; i++) {
        int m = 2 * (i % 4);
        x[2 * i] = centres[2 * m];
        x[2 * i + 1] = centres[2 * m + 1];
    }
    hatebm_mode_coverage cov;
    double fr[8];
    CHECK_OK(hatebm_metrics_mode_coverage(x, 80, 40, centres, 16, 8, 0.02f, -1.0, 0.0, &cov, fr, 8));
    CHECK(cov.struct_size == sizeof(hatebm_mode_coverage));
    CHECK(cov.modes_covered == 4 && cov.modes_covered_within == 4);
    CHECK(cov.within == 1.0);
    CHECK(close_to(cov.kl_to_uniform, log(2.0), 1e-12));
    CHECK(close_to(cov.radius, 0.06, 1e-7));
    CHECK(cov.min_fraction == 0.05);
    CHECK(fr[0] == 0.25 && fr[1] == 0.0 && fr[2] == 0.25 && fr[6] == 0.25);
    /* Explicit threshold and radius; no fractions wanted. */
    CHECK_OK(hatebm_metrics_mode_coverage(x, 80, 40, centres, 16, 8, 0.02f, 0.3, 1.0, &cov, NULL, 0));
    CHECK(cov.modes_covered == 0 && cov.min_fraction == 0.3 && close_to(cov.radius, 0.02, 1e-7));
}

static void two_sample(void) {
    /* 1-D: real {0, 1}, fake {10, 11}: 2 * 10 - 1 - 1 = 18. */
    const float real[2] = {0.0f, 1.0f}, fake[2] = {10.0f, 11.0f};
    double e = -1.0;
    CHECK_OK(hatebm_metrics_energy_distance(real, 2, 2, fake, 2, 2, 1, &e));
    CHECK(close_to(e, 18.0, 1e-12));
    /* MMD^2 with one bandwidth: k(0,1) = k(10,11) = exp(-1/2), cross terms ~ 0:
     * exp(-1/2) + exp(-1/2) - 2 * mean(cross) (cross < 1e-20). */
    const double bw = 1.0;
    double mmd = -1.0;
    CHECK_OK(hatebm_metrics_mmd2(real, 2, 2, fake, 2, 2, 1, &bw, 1, &mmd));
    CHECK(close_to(mmd, 2.0 * exp(-0.5), 1e-12));
    /* Median rule (bandwidths NULL, 0): positive for far-apart sets. */
    CHECK_OK(hatebm_metrics_mmd2(real, 2, 2, fake, 2, 2, 1, NULL, 0, &mmd));
    CHECK(mmd > 0.0);
}

static void misuse(void) {
    float a[N * D];
    for (size_t i = 0; i < N * D; i++) a[i] = (float)(i % 7) - 3.0f;
    const double sentinel = -12345.0;
    double out = sentinel, out2 = sentinel;

    /* NULL out-params and buffers. */
    CHECK_STATUS(hatebm_metrics_frechet(a, N * D, N, a, N * D, N, D, NULL), HATEBM_NULL_PARAMETER);
    CHECK_CONTAINS(hatebm_last_error_message(), "`out_fd`");
    CHECK_STATUS(hatebm_metrics_frechet(NULL, N * D, N, a, N * D, N, D, &out), HATEBM_NULL_PARAMETER);
    CHECK_CONTAINS(hatebm_last_error_message(), "hatebm_metrics_frechet: ");
    CHECK_STATUS(hatebm_metrics_frechet_pca(a, N * D, N, NULL, 8, 2, D, 2, 0, &out), HATEBM_NULL_PARAMETER);
    CHECK_STATUS(hatebm_metrics_precision_recall(a, N * D, N, a, N * D, N, D, 3, &out, NULL),
                 HATEBM_NULL_PARAMETER);
    CHECK_CONTAINS(hatebm_last_error_message(), "`out_recall`");
    CHECK_STATUS(hatebm_metrics_precision_recall(a, N * D, N, a, N * D, N, D, 3, NULL, &out),
                 HATEBM_NULL_PARAMETER);
    CHECK_STATUS(hatebm_metrics_mode_coverage(a, 8, 4, a, 4, 2, 0.1f, -1.0, 0.0, NULL, NULL, 0),
                 HATEBM_NULL_PARAMETER);
    CHECK_STATUS(hatebm_metrics_mmd2(a, N * D, N, a, N * D, N, D, NULL, 2, &out), HATEBM_NULL_PARAMETER);
    CHECK_CONTAINS(hatebm_last_error_message(), "`bandwidths`");
    CHECK_STATUS(hatebm_metrics_energy_distance(a, N * D, N, a, N * D, N, D, NULL), HATEBM_NULL_PARAMETER);
    CHECK(out == sentinel);

    /* Lengths that are not rows * dim. */
    CHECK_STATUS(hatebm_metrics_frechet(a, N * D - 1, N, a, N * D, N, D, &out), HATEBM_SHAPE_MISMATCH);
    CHECK_CONTAINS(hatebm_last_error_message(), "buffer `a` has 239 elements; expected n * dim = 60 * 4 = 240");
    CHECK_STATUS(hatebm_metrics_precision_recall(a, N * D, N, a, N * D, N - 1, D, 3, &out, &out2),
                 HATEBM_SHAPE_MISMATCH);
    CHECK_STATUS(hatebm_metrics_energy_distance(a, N * D, N, a, N * D, N, D + 1, &out), HATEBM_SHAPE_MISMATCH);
    /* rows * dim overflowing size_t. */
    CHECK_STATUS(hatebm_metrics_frechet(a, N * D, SIZE_MAX, a, N * D, N, D, &out), HATEBM_INVALID_ARGUMENT);

    /* Bad values and parameters. */
    float bad[N * D];
    memcpy(bad, a, sizeof bad);
    bad[5] = NAN;
    CHECK_STATUS(hatebm_metrics_frechet(a, N * D, N, bad, N * D, N, D, &out), HATEBM_NUMERIC);
    CHECK_CONTAINS(hatebm_last_error_message(), "sample 1, feature 1");
    bad[5] = INFINITY;
    CHECK_STATUS(hatebm_metrics_mmd2(bad, N * D, N, a, N * D, N, D, NULL, 0, &out), HATEBM_NUMERIC);
    CHECK_STATUS(hatebm_metrics_frechet(a, 4, 1, a, 4, 1, D, &out), HATEBM_INVALID_ARGUMENT);
    CHECK_STATUS(hatebm_metrics_frechet(NULL, 0, 0, NULL, 0, 0, 0, &out), HATEBM_INVALID_ARGUMENT);
    CHECK_STATUS(hatebm_metrics_frechet_pca(a, N * D, N, a, N * D, N, D, 0, 0, &out), HATEBM_INVALID_ARGUMENT);
    CHECK_STATUS(hatebm_metrics_frechet_pca(a, N * D, N, a, N * D, N, D, D + 1, 0, &out),
                 HATEBM_INVALID_ARGUMENT);
    CHECK_STATUS(hatebm_metrics_precision_recall(a, N * D, N, a, N * D, N, D, 0, &out, &out2),
                 HATEBM_INVALID_ARGUMENT);
    CHECK_STATUS(hatebm_metrics_precision_recall(a, 12, 3, a, N * D, N, D, 3, &out, &out2),
                 HATEBM_INVALID_ARGUMENT);
    const double bws[2] = {1.0, -1.0};
    CHECK_STATUS(hatebm_metrics_mmd2(a, N * D, N, a, N * D, N, D, bws, 2, &out), HATEBM_INVALID_ARGUMENT);
    CHECK(out == sentinel && out2 == sentinel);

    /* Mode coverage: parameters, fraction buffer length, overlap. */
    hatebm_mode_coverage cov;
    memset(&cov, 0x5a, sizeof cov);
    hatebm_mode_coverage cov_before = cov;
    double fr[3] = {sentinel, sentinel, sentinel};
    CHECK_STATUS(hatebm_metrics_mode_coverage(a, 8, 4, a, 4, 2, -0.1f, -1.0, 0.0, &cov, NULL, 0),
                 HATEBM_INVALID_ARGUMENT);
    CHECK_STATUS(hatebm_metrics_mode_coverage(a, 8, 4, a, 4, 2, 0.1f, 2.0, 0.0, &cov, NULL, 0),
                 HATEBM_INVALID_ARGUMENT);
    CHECK_STATUS(hatebm_metrics_mode_coverage(a, 8, 4, a, 4, 2, 0.1f, -1.0, -3.0, &cov, NULL, 0),
                 HATEBM_INVALID_ARGUMENT);
    CHECK_STATUS(hatebm_metrics_mode_coverage(a, 8, 4, NULL, 0, 0, 0.1f, -1.0, 0.0, &cov, NULL, 0),
                 HATEBM_INVALID_ARGUMENT);
    CHECK_STATUS(hatebm_metrics_mode_coverage(a, 8, 4, a, 4, 2, 0.1f, -1.0, 0.0, &cov, fr, 3),
                 HATEBM_SHAPE_MISMATCH);
    CHECK_STATUS(hatebm_metrics_mode_coverage(a, 8, 4, a, 4, 2, 0.1f, -1.0, 0.0, &cov, NULL, 2),
                 HATEBM_NULL_PARAMETER);
    /* out_fractions overlapping the samples. */
    double both[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    CHECK_STATUS(hatebm_metrics_mode_coverage((const float *)(const void *)both, 8, 4, a, 4, 2, 0.1f, -1.0,
                                              0.0, &cov, both + 1, 2),
                 HATEBM_INVALID_ARGUMENT);
    CHECK_CONTAINS(hatebm_last_error_message(), "overlap");
    CHECK(memcmp(&cov, &cov_before, sizeof cov) == 0);
    CHECK(fr[0] == sentinel && fr[1] == sentinel && fr[2] == sentinel);

    /* A misaligned float buffer. */
    CHECK_STATUS(hatebm_metrics_energy_distance((const float *)(const void *)((const char *)a + 1), 4, 1, a,
                                                N * D, N, D, &out),
                 HATEBM_INVALID_ARGUMENT);
    CHECK_CONTAINS(hatebm_last_error_message(), "misaligned");
    CHECK(out == sentinel);
}

int main(void) {
    frechet();
    precision_recall();
    mode_coverage();
    two_sample();
    misuse();
    return check_summary("metrics");
}
