/*
 * sample_checkpoint.c - load a trained model from a checkpoint and draw samples
 * from it, with the model-only API (hatebm_trained_model_*): the networks, the EMA and
 * the sampler settings of the run, without its training data.
 *
 *   sample_checkpoint CHECKPOINT [N [OUT_PREFIX [STEPS [SEED]]]]
 *
 *   CHECKPOINT  a file written by hatebm_session_save_checkpoint (or `hatebm train`)
 *   N           number of samples (default 64)
 *   OUT_PREFIX  writes OUT_PREFIX.npy (float32, shape [N, ...sample]) and, for
 *               image data, OUT_PREFIX.png (default: samples)
 *   STEPS       Langevin steps (default -1: the training chains' K; 0: the
 *               generator's samples without MCMC)
 *   SEED        sampling seed (default 0)
 *
 * The backend is the one stored in the checkpoint unless HATEBM_BACKEND is set.
 *
 * Build: cc -std=c99 sample_checkpoint.c $(pkg-config --cflags --libs hatebm) -o sample_checkpoint
 */
#include <hatebm.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define TRY(call)                                                                  \
    do {                                                                           \
        hatebm_status st_ = (call);                                                \
        if (st_ != HATEBM_OK) {                                                    \
            fprintf(stderr, "sample_checkpoint: %s failed: %s: %s\n", #call,       \
                    hatebm_status_str((int)st_), hatebm_last_error_message());     \
            goto done;                                                             \
        }                                                                          \
    } while (0)

int main(int argc, char **argv) {
    int rc = 1;
    const char *ckpt, *prefix, *backend = getenv("HATEBM_BACKEND");
    size_t n, sample_len = 0, shape[8], ndim = 0, img[3], n_img = 0, i;
    char path[4096];
    float *x = NULL, *energy = NULL;
    double e_mean = 0.0, lo = 1e30, hi = -1e30;
    uint64_t iteration = 0;
    hatebm_trained_model *m = NULL;
    hatebm_sample_params sp = hatebm_sample_default_params();

    if (argc < 2) {
        fprintf(stderr, "usage: %s CHECKPOINT [N [OUT_PREFIX [STEPS [SEED]]]]\n", argv[0]);
        return 2;
    }
    ckpt = argv[1];
    n = argc > 2 ? (size_t)strtoull(argv[2], NULL, 10) : 64;
    prefix = argc > 3 ? argv[3] : "samples";
    sp.n = n;
    sp.steps = argc > 4 ? strtoll(argv[4], NULL, 10) : -1;
    sp.seed = argc > 5 ? strtoull(argv[5], NULL, 10) : 0;

    /* backend NULL = the one stored in the checkpoint. */
    TRY(hatebm_trained_model_load(ckpt, backend, &m));
    TRY(hatebm_trained_model_info(m, &sample_len, &iteration));
    TRY(hatebm_trained_model_sample_shape(m, shape + 1, 7, &ndim));
    printf("sample_checkpoint: %s (iteration %llu), sample shape [", ckpt,
           (unsigned long long)iteration);
    for (i = 0; i < ndim; i++) {
        printf(i ? ", %zu" : "%zu", shape[i + 1]);
    }
    printf("]\n");

    x = malloc(n * sample_len * sizeof *x);
    energy = malloc(n * sizeof *energy);
    if (x == NULL || energy == NULL) {
        goto done;
    }
    TRY(hatebm_trained_model_sample(m, &sp, x, n * sample_len));
    TRY(hatebm_trained_model_energy(m, x, n * sample_len, n, sp.use_ema, energy, n));
    for (i = 0; i < n; i++) {
        e_mean += energy[i] / (double)n;
    }
    for (i = 0; i < n * sample_len; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    printf("sample_checkpoint: %zu samples, values in [%.3f, %.3f], mean energy %.4f\n", n, lo,
           hi, e_mean);

    shape[0] = n;
    snprintf(path, sizeof path, "%s.npy", prefix);
    TRY(hatebm_save_npy(path, x, n * sample_len, shape, ndim + 1));
    printf("sample_checkpoint: wrote %s\n", path);
    TRY(hatebm_trained_model_image_shape(m, img, 3, &n_img));
    if (n_img == 3) {
        snprintf(path, sizeof path, "%s.png", prefix);
        TRY(hatebm_save_image_grid(path, x, n * sample_len, n, img[0], img[1], img[2]));
        printf("sample_checkpoint: wrote %s\n", path);
    }
    printf("sample_checkpoint: OK\n");
    rc = 0;

done:
    free(x);
    free(energy);
    hatebm_trained_model_free(m);
    return rc;
}
