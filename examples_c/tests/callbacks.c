/*
 * User models as callbacks: a quadratic energy and a linear generator written
 * in C, run through the Langevin sampler and a host bank. Covers the vtable
 * rules (required members, struct_size, free called exactly once), callbacks
 * that fail on their first call and in the middle of a long run (status,
 * message, chains untouched), callbacks that leave outputs unwritten, and the
 * bank API with its misuse.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define DIM 3
#define LAT 2

/* U(x) = 0.5 * sum_j a_j (x_j - m_j)^2; fails (returns 5) on call `fail_at`. */
typedef struct {
    float a[DIM], m[DIM];
    int calls;
    int fail_at;
    int leave_nan;
    int freed;
} quad;

static int quad_energy(const float *x, size_t n, size_t len, float *out_e, void *ud) {
    quad *q = (quad *)ud;
    size_t b, j;
    q->calls++;
    if (q->calls == q->fail_at) {
        return 5;
    }
    for (b = 0; b < n; b++) {
        float s = 0.0f;
        for (j = 0; j < len; j++) {
            float d = x[b * len + j] - q->m[j];
            s += 0.5f * q->a[j] * d * d;
        }
        out_e[b] = s;
    }
    return 0;
}

static int quad_grad(const float *x, size_t n, size_t len, float *out_e, float *out_g, void *ud) {
    quad *q = (quad *)ud;
    size_t b, j;
    q->calls++;
    if (q->calls == q->fail_at) {
        hatebm_callback_set_error("the quadratic is tired");
        return 5;
    }
    for (b = 0; b < n; b++) {
        float s = 0.0f;
        for (j = 0; j < len; j++) {
            float d = x[b * len + j] - q->m[j];
            s += 0.5f * q->a[j] * d * d;
            if (!(q->leave_nan && b == n - 1 && j == len - 1)) {
                out_g[b * len + j] = q->a[j] * d;
            }
        }
        out_e[b] = s;
    }
    return 0;
}

static void quad_free(void *ud) {
    ((quad *)ud)->freed++;
}

/* G(z) = W z + c with W (DIM x LAT); fails on call `fail_at`. */
typedef struct {
    float w[DIM][LAT], c[DIM];
    int calls, fail_at, freed;
} linear;

static int lin_forward(const float *z, size_t n, size_t latent_len, float *out_x, size_t sample_len,
                       void *ud) {
    linear *g = (linear *)ud;
    size_t b, i, k;
    g->calls++;
    if (g->calls == g->fail_at) {
        return -1;
    }
    for (b = 0; b < n; b++) {
        for (i = 0; i < sample_len; i++) {
            float s = g->c[i];
            for (k = 0; k < latent_len; k++) {
                s += g->w[i][k] * z[b * latent_len + k];
            }
            out_x[b * sample_len + i] = s;
        }
    }
    return 0;
}

static int lin_vjp(const float *z, const float *cot, size_t n, size_t latent_len, size_t sample_len,
                   float *out_gz, void *ud) {
    linear *g = (linear *)ud;
    size_t b, i, k;
    (void)z;
    g->calls++;
    for (b = 0; b < n; b++) {
        for (k = 0; k < latent_len; k++) {
            float s = 0.0f;
            for (i = 0; i < sample_len; i++) {
                s += g->w[i][k] * cot[b * sample_len + i];
            }
            out_gz[b * latent_len + k] = s;
        }
    }
    return 0;
}

static void lin_free(void *ud) {
    ((linear *)ud)->freed++;
}

static quad make_quad(void) {
    quad q = {{1.0f, 2.0f, 0.5f}, {0.5f, -1.0f, 2.0f}, 0, -1, 0, 0};
    return q;
}

static linear make_linear(void) {
    linear g = {{{1.0f, 0.0f}, {0.5f, 1.0f}, {0.0f, -1.0f}}, {0.1f, 0.2f, 0.3f}, 0, -1, 0};
    return g;
}

static hatebm_energy *new_quad(quad *q) {
    hatebm_energy_vtable vt = hatebm_energy_default_vtable();
    hatebm_energy *e = NULL;
    size_t shape[1] = {DIM};
    vt.energy = quad_energy;
    vt.grad_x = quad_grad;
    vt.name = "quad";
    vt.free = quad_free;
    CHECK_OK(hatebm_energy_new(&vt, q, shape, 1, &e));
    return e;
}

static hatebm_generator *new_linear(linear *g, int with_vjp) {
    hatebm_generator_vtable vt = hatebm_generator_default_vtable();
    hatebm_generator *h = NULL;
    size_t lat[1] = {LAT}, out[1] = {DIM};
    vt.forward = lin_forward;
    vt.vjp_latent = with_vjp ? lin_vjp : NULL;
    vt.name = "linear";
    vt.free = lin_free;
    CHECK_OK(hatebm_generator_new(&vt, g, lat, 1, out, 1, &h));
    return h;
}

static void test_vtables(void) {
    quad q = make_quad();
    hatebm_energy_vtable vt = hatebm_energy_default_vtable();
    hatebm_energy *e = NULL, *untouched = (hatebm_energy *)(void *)&q;
    size_t shape[2] = {DIM, 1}, zero[1] = {0};

    CHECK(vt.struct_size == sizeof vt && vt.energy == NULL && vt.free == NULL);
    vt.free = quad_free;
    /* Missing required callbacks. */
    CHECK_STATUS(hatebm_energy_new(&vt, &q, shape, 1, &untouched), HATEBM_NULL_PARAMETER);
    CHECK_CONTAINS(hatebm_last_error_message(), "vtable->energy");
    vt.energy = quad_energy;
    CHECK_STATUS(hatebm_energy_new(&vt, &q, shape, 1, &untouched), HATEBM_NULL_PARAMETER);
    CHECK_CONTAINS(hatebm_last_error_message(), "vtable->grad_x");
    vt.grad_x = quad_grad;
    /* Uninitialised struct_size; bad shapes. */
    vt.struct_size = 0;
    CHECK_STATUS(hatebm_energy_new(&vt, &q, shape, 1, &untouched), HATEBM_INVALID_ARGUMENT);
    CHECK_CONTAINS(hatebm_last_error_message(), "hatebm_energy_default_vtable");
    vt.struct_size = sizeof vt;
    CHECK_STATUS(hatebm_energy_new(&vt, &q, shape, 0, &untouched), HATEBM_INVALID_ARGUMENT);
    CHECK_STATUS(hatebm_energy_new(&vt, &q, zero, 1, &untouched), HATEBM_INVALID_ARGUMENT);
    CHECK_STATUS(hatebm_energy_new(&vt, &q, NULL, 1, &untouched), HATEBM_NULL_PARAMETER);
    CHECK_STATUS(hatebm_energy_new(NULL, &q, shape, 1, &untouched), HATEBM_NULL_PARAMETER);
    CHECK_STATUS(hatebm_energy_new(&vt, &q, shape, 1, NULL), HATEBM_NULL_PARAMETER);
    /* Strings crossing the ABI are UTF-8: a Latin-1 name is refused. */
    vt.name = "caf\xe9";
    CHECK_STATUS(hatebm_energy_new(&vt, &q, shape, 1, &untouched), HATEBM_INVALID_ARGUMENT);
    CHECK_CONTAINS(hatebm_last_error_message(), "UTF-8");
    vt.name = NULL;
    CHECK(untouched == (hatebm_energy *)(void *)&q);
    /* Failed constructors never call free. */
    CHECK(q.freed == 0);
    /* A {3, 1} shape is fine (sample_len 3); free is called exactly once. */
    CHECK_OK(hatebm_energy_new(&vt, &q, shape, 2, &e));
    hatebm_energy_free(e);
    CHECK(q.freed == 1);
    hatebm_energy_free(NULL);
    hatebm_generator_free(NULL);
    {
        hatebm_generator_vtable gv = hatebm_generator_default_vtable();
        hatebm_generator *g = NULL;
        size_t lat[1] = {LAT};
        CHECK_STATUS(hatebm_generator_new(&gv, NULL, lat, 1, shape, 1, &g), HATEBM_NULL_PARAMETER);
        CHECK_CONTAINS(hatebm_last_error_message(), "vtable->forward");
        CHECK(g == NULL);
    }
}

static void test_sampler(void) {
    quad q = make_quad();
    linear lg = make_linear();
    hatebm_energy *e = new_quad(&q);
    hatebm_generator *g = new_linear(&lg, 1);
    hatebm_langevin_params p = hatebm_langevin_default_params();
    hatebm_langevin_stats st;
    float y[8 * DIM] = {0}, y2[8 * DIM] = {0}, z[8 * LAT], z0[8 * LAT];
    int i;

    CHECK(p.struct_size == sizeof p && p.steps == 50 && p.clip_res > 0.0f);
    p.steps = 40;
    p.temperature = 1.0f;
    p.eps_res = 0.2f;
    p.clip_res = 0.0f;
    p.seed = 3;
    /* Energy only: 8 chains in one call == two calls of 4 with row_offset. */
    CHECK_OK(hatebm_langevin_run_custom(e, NULL, &p, NULL, 0, y, 8 * DIM, 8, &st));
    CHECK(q.calls == 40 && st.steps == 40 && st.clip_frac_res == 0.0);
    CHECK(isfinite(st.mean_energy) && st.drift_norm_res > 0.0);
    CHECK_OK(hatebm_langevin_run_custom(e, NULL, &p, NULL, 0, y2, 4 * DIM, 4, NULL));
    p.row_offset = 4;
    CHECK_OK(hatebm_langevin_run_custom(e, NULL, &p, NULL, 0, y2 + 4 * DIM, 4 * DIM, 4, NULL));
    CHECK_SAME_FLOATS(y, y2, 8 * DIM);
    p.row_offset = 0;

    /* With the generator, latents and residual both moving. */
    for (i = 0; i < 8 * LAT; i++) {
        z[i] = z0[i] = 0.1f * (float)i - 0.5f;
    }
    memset(y, 0, sizeof y);
    p.update_latents = 1;
    p.eps_latent = 0.1f;
    p.prior_sigma_res = 0.5f;
    p.latent_prior = 1;
    p.clip_latent = 1.0f;
    CHECK_OK(hatebm_langevin_run_custom(e, g, &p, z, 8 * LAT, y, 8 * DIM, 8, &st));
    CHECK(memcmp(z, z0, sizeof z) != 0 && st.mean_latent_norm > 0.0 && st.drift_norm_latent > 0.0);
    CHECK(lg.calls > 0);

    /* Generator misuse: z missing, wrong length, z without generator, no VJP. */
    CHECK_STATUS(hatebm_langevin_run_custom(e, g, &p, NULL, 0, y, 8 * DIM, 8, NULL),
                 HATEBM_NULL_PARAMETER);
    CHECK_CONTAINS(hatebm_last_error_message(), "`z`");
    CHECK_STATUS(hatebm_langevin_run_custom(e, g, &p, z, 8 * LAT - 1, y, 8 * DIM, 8, NULL),
                 HATEBM_SHAPE_MISMATCH);
    CHECK_STATUS(hatebm_langevin_run_custom(e, NULL, &p, z, 8 * LAT, y, 8 * DIM, 8, NULL),
                 HATEBM_INVALID_ARGUMENT);
    {
        linear lg2 = make_linear();
        hatebm_generator *novjp = new_linear(&lg2, 0);
        CHECK_STATUS(hatebm_langevin_run_custom(e, novjp, &p, z, 8 * LAT, y, 8 * DIM, 8, NULL),
                     HATEBM_INVALID_ARGUMENT);
        CHECK_CONTAINS(hatebm_last_error_message(), "vjp_latent");
        hatebm_generator_free(novjp);
        CHECK(lg2.freed == 1);
    }
    p.update_latents = 0;
    p.eps_res = -1.0f;
    CHECK_STATUS(hatebm_langevin_run_custom(e, NULL, &p, NULL, 0, y, 8 * DIM, 8, NULL),
                 HATEBM_INVALID_ARGUMENT);
    CHECK_CONTAINS(hatebm_last_error_message(), "params->eps_res");
    CHECK_STATUS(hatebm_langevin_run_custom(NULL, NULL, &p, NULL, 0, y, 8 * DIM, 8, NULL),
                 HATEBM_NULL_PARAMETER);

    hatebm_generator_free(g);
    hatebm_energy_free(e);
    CHECK(q.freed == 1 && lg.freed == 1);
}

/* Issue 17, item 3: the neutral defaults sample a user energy's exp(-U):
 * per-dimension mean m_j and variance (1/a_j) * 2 / (2 - a_j * eps^2 / 2)
 * (unadjusted Langevin's exact stationary variance on a Gaussian), within 5
 * standard errors over 2048 chains. */
static void test_neutral_defaults(void) {
    enum { N = 2048 };
    static float y[N * DIM];
    quad q = make_quad();
    hatebm_energy *e = new_quad(&q);
    hatebm_langevin_params p = hatebm_langevin_neutral_params();
    size_t i, j;

    CHECK(p.struct_size == sizeof p && p.temperature == 1.0f && p.clip_res == 0.0f);
    CHECK(p.steps == 500 && p.eps_res == 0.2f && p.update_res && p.noise);
    p.seed = 9;
    CHECK_OK(hatebm_langevin_run_custom(e, NULL, &p, NULL, 0, y, N * DIM, N, NULL));
    for (j = 0; j < DIM; j++) {
        double mean = 0.0, var = 0.0, s = 0.5 * (double)p.eps_res * (double)p.eps_res;
        double a = (double)q.a[j], want = 2.0 / (a * (2.0 - s * a));
        for (i = 0; i < N; i++) {
            mean += y[i * DIM + j];
        }
        mean /= N;
        for (i = 0; i < N; i++) {
            double d = y[i * DIM + j] - mean;
            var += d * d;
        }
        var /= N - 1;
        CHECK(fabs(mean - (double)q.m[j]) < 5.0 * sqrt(want / N));
        CHECK(fabs(var - want) < 5.0 * want * sqrt(2.0 / (N - 1)));
    }
    hatebm_energy_free(e);
}

/* Failures inside callbacks: on the first call, in the middle of a long run,
 * and a callback that "succeeds" but leaves an output unwritten. */
static void test_callback_failures(void) {
    quad q = make_quad();
    hatebm_energy *e = new_quad(&q);
    hatebm_langevin_params p = hatebm_langevin_default_params();
    float y[4 * DIM], y0[4 * DIM];
    int i;
    for (i = 0; i < 4 * DIM; i++) {
        y[i] = y0[i] = (float)i * 0.25f;
    }
    p.temperature = 1.0f;
    p.eps_res = 0.1f;
    p.steps = 100;

    q.fail_at = 1;
    CHECK_STATUS(hatebm_langevin_run_custom(e, NULL, &p, NULL, 0, y, 4 * DIM, 4, NULL),
                 HATEBM_CALLBACK);
    CHECK_CONTAINS(hatebm_last_error_message(), "hatebm_langevin_run_custom");
    CHECK_CONTAINS(hatebm_last_error_message(), "`quad`");
    CHECK_CONTAINS(hatebm_last_error_message(), "returned 5 (call 1 of this hatebm call)");
    CHECK_CONTAINS(hatebm_last_error_message(), "the quadratic is tired");
    CHECK(q.calls == 1);
    CHECK(memcmp(y, y0, sizeof y) == 0);

    /* Fails at call 37 of 100: nothing written, the run reports where. */
    q.calls = 0;
    q.fail_at = 37;
    CHECK_STATUS(hatebm_langevin_run_custom(e, NULL, &p, NULL, 0, y, 4 * DIM, 4, NULL),
                 HATEBM_CALLBACK);
    CHECK_CONTAINS(hatebm_last_error_message(), "(call 37 of this hatebm call)");
    CHECK(q.calls == 37);
    CHECK(memcmp(y, y0, sizeof y) == 0);

    /* Returns 0 but leaves the last gradient entry unwritten. */
    q.calls = 0;
    q.fail_at = -1;
    q.leave_nan = 1;
    CHECK_STATUS(hatebm_langevin_run_custom(e, NULL, &p, NULL, 0, y, 4 * DIM, 4, NULL),
                 HATEBM_NUMERIC);
    CHECK_CONTAINS(hatebm_last_error_message(), "out_grad[11]");
    CHECK(memcmp(y, y0, sizeof y) == 0);

    /* The library is fine afterwards. */
    q.leave_nan = 0;
    CHECK_OK(hatebm_langevin_run_custom(e, NULL, &p, NULL, 0, y, 4 * DIM, 4, NULL));
    hatebm_energy_free(e);
}

static void test_bank(void) {
    linear lg = make_linear();
    hatebm_generator *g = new_linear(&lg, 1);
    hatebm_bank *b = NULL, *img = NULL;
    size_t cap = 0, slots[10], slots2[10], dup[2] = {3, 3}, bad[1] = {32}, i, j;
    float z[10 * LAT], x[10 * DIM], z2[10 * LAT], x2[10 * DIM], gx[10 * DIM];
    int distinct = 1;

    CHECK_STATUS(hatebm_bank_new(0, LAT, DIM, 0, &b), HATEBM_INVALID_ARGUMENT);
    CHECK_OK(hatebm_bank_new(32, LAT, DIM, 0, &b));
    CHECK_OK(hatebm_bank_capacity(b, &cap));
    CHECK(cap == 32);
    CHECK_OK(hatebm_bank_init_from_generator(b, g, 8, 1));
    CHECK(lg.calls == 4); /* 32 slots in batches of 8 */

    CHECK_OK(hatebm_bank_draw_slots(b, 1, 0, slots, 10));
    CHECK_OK(hatebm_bank_draw_slots(b, 1, 0, slots2, 10));
    CHECK(memcmp(slots, slots2, sizeof slots) == 0);
    for (i = 0; i < 10; i++) {
        distinct &= slots[i] < 32;
        for (j = 0; j < i; j++) {
            distinct &= slots[i] != slots[j];
        }
    }
    CHECK(distinct);
    {
        size_t many[33];
        CHECK_STATUS(hatebm_bank_draw_slots(b, 1, 0, many, 33), HATEBM_INVALID_ARGUMENT);
        CHECK_STATUS(hatebm_bank_draw_slots(b, 1, 0, many, 0), HATEBM_INVALID_ARGUMENT);
    }

    /* x = G(z) after initialisation. */
    CHECK_OK(hatebm_bank_gather(b, slots, 10, z, 10 * LAT, x, 10 * DIM));
    lin_forward(z, 10, LAT, gx, DIM, &lg);
    for (i = 0; i < 10 * DIM; i++) {
        distinct &= fabsf(gx[i] - x[i]) < 1e-5f;
    }
    CHECK(distinct);

    /* Overwrite then read back. */
    for (i = 0; i < 10 * LAT; i++) {
        z2[i] = (float)i;
    }
    for (i = 0; i < 10 * DIM; i++) {
        x2[i] = -(float)i;
    }
    CHECK_OK(hatebm_bank_overwrite(b, slots, 10, z2, 10 * LAT, x2, 10 * DIM));
    CHECK_OK(hatebm_bank_gather(b, slots, 10, z, 10 * LAT, x, 10 * DIM));
    CHECK_SAME_FLOATS(z, z2, 10 * LAT);
    CHECK_SAME_FLOATS(x, x2, 10 * DIM);
    CHECK_OK(hatebm_bank_gather(b, slots, 10, NULL, 0, x, 10 * DIM));

    /* Misuse leaves the bank unchanged. */
    CHECK_STATUS(hatebm_bank_overwrite(b, dup, 2, z2, 2 * LAT, x2, 2 * DIM), HATEBM_INVALID_ARGUMENT);
    CHECK_CONTAINS(hatebm_last_error_message(), "twice");
    CHECK_STATUS(hatebm_bank_overwrite(b, bad, 1, z2, LAT, x2, DIM), HATEBM_INVALID_ARGUMENT);
    CHECK_STATUS(hatebm_bank_overwrite(b, slots, 10, NULL, 0, x2, 10 * DIM), HATEBM_NULL_PARAMETER);
    CHECK_STATUS(hatebm_bank_overwrite(b, slots, 10, z2, 10 * LAT, x2, 10 * DIM - 1),
                 HATEBM_SHAPE_MISMATCH);
    CHECK_STATUS(hatebm_bank_gather(b, bad, 1, NULL, 0, x, DIM), HATEBM_INVALID_ARGUMENT);
    CHECK_OK(hatebm_bank_gather(b, slots, 10, z, 10 * LAT, x, 10 * DIM));
    CHECK_SAME_FLOATS(z, z2, 10 * LAT);
    CHECK_SAME_FLOATS(x, x2, 10 * DIM);

    /* A generator failing during initialisation leaves the bank unchanged. */
    lg.calls = 0;
    lg.fail_at = 2;
    CHECK_STATUS(hatebm_bank_init_from_generator(b, g, 8, 2), HATEBM_CALLBACK);
    CHECK_CONTAINS(hatebm_last_error_message(), "returned -1 (call 2 of this hatebm call)");
    CHECK_OK(hatebm_bank_gather(b, slots, 10, z, 10 * LAT, x, 10 * DIM));
    CHECK_SAME_FLOATS(x, x2, 10 * DIM);

    /* An images-only bank: no latents anywhere. */
    CHECK_OK(hatebm_bank_new(16, 0, DIM, 7, &img));
    CHECK_STATUS(hatebm_bank_init_from_generator(img, g, 8, 1), HATEBM_INVALID_ARGUMENT);
    {
        size_t s0[1] = {0};
        CHECK_OK(hatebm_bank_overwrite(img, s0, 1, NULL, 0, x2, DIM));
        CHECK_STATUS(hatebm_bank_overwrite(img, s0, 1, z2, LAT, x2, DIM), HATEBM_INVALID_ARGUMENT);
        CHECK_STATUS(hatebm_bank_gather(img, s0, 1, z, LAT, x, DIM), HATEBM_INVALID_ARGUMENT);
        CHECK_OK(hatebm_bank_gather(img, s0, 1, NULL, 0, x, DIM));
        CHECK_SAME_FLOATS(x, x2, DIM);
    }
    /* A generator of another size. */
    {
        hatebm_bank *other = NULL;
        CHECK_OK(hatebm_bank_new(16, LAT + 1, DIM, 0, &other));
        CHECK_STATUS(hatebm_bank_init_from_generator(other, g, 8, 1), HATEBM_SHAPE_MISMATCH);
        hatebm_bank_free(other);
    }
    hatebm_bank_free(img);
    hatebm_bank_free(b);
    hatebm_bank_free(NULL);
    hatebm_generator_free(g);
}

int main(void) {
    test_vtables();
    test_sampler();
    test_neutral_defaults();
    test_callback_failures();
    test_bank();
    return check_summary("callbacks");
}
