/*
 * train_digits.c - train a Hat EBM on the embedded 8x8 digits from C, shaped
 * like a libtorch training harness: seed, one line that picks the backend, a
 * preset, a step loop that logs every LOG_EVERY steps and checkpoints every
 * CKPT_EVERY steps, and a final sample grid.
 *
 *   train_digits [STEPS [OUT_DIR [KEY=VALUE ...]]]
 *
 *   STEPS      training iterations (default 300; CI runs a few)
 *   OUT_DIR    checkpoint.safetensors, samples.png, samples.npy, *.safetensors
 *              weights (default out/train_digits)
 *   KEY=VALUE  any configuration override, e.g. backend=tch:cuda:0,
 *              train.batch_size=16, langevin.steps=5
 *
 * The backend is "cpu" unless the environment variable HATEBM_BACKEND or a
 * backend=... argument says otherwise ("tch:cpu", "tch:cuda:0", "auto").
 *
 * Build: cc -std=c99 train_digits.c $(pkg-config --cflags --libs hatebm) -o train_digits
 */
#include <hatebm.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_EVERY 20
#define CKPT_EVERY 100
#define GRID_N 64

/* Prints the failing call, its status and the library's message, then jumps
 * to the cleanup label (every handle is freed there; free(NULL) is a no-op). */
#define TRY(call)                                                                  \
    do {                                                                           \
        hatebm_status st_ = (call);                                                \
        if (st_ != HATEBM_OK) {                                                    \
            fprintf(stderr, "train_digits: %s failed: %s: %s\n", #call,            \
                    hatebm_status_str((int)st_), hatebm_last_error_message());     \
            goto done;                                                             \
        }                                                                          \
    } while (0)

static void log_to_stderr(int level, const char *target, const char *message, void *user_data) {
    (void)target;
    (void)user_data;
    fprintf(stderr, "[hatebm %d] %s\n", level, message);
}

static void join(char *dst, size_t cap, const char *dir, const char *file) {
    snprintf(dst, cap, "%s/%s", dir, file);
}

int main(int argc, char **argv) {
    int rc = 1;
    unsigned long long steps = argc > 1 ? strtoull(argv[1], NULL, 10) : 300;
    const char *out_dir = argc > 2 ? argv[2] : "out/train_digits";
    const char *backend = getenv("HATEBM_BACKEND");
    char path[4096], text[256], name[64];
    size_t n_name = 0, sample_len = 0, img[3] = {0, 0, 0}, n_img = 0;
    unsigned long long i;
    float *samples = NULL;
    hatebm_config *cfg = NULL;
    hatebm_session *s = NULL;
    hatebm_step_stats st;
    hatebm_sample_params sp;

    if (hatebm_abi_version() != HATEBM_ABI_VERSION) {
        fprintf(stderr, "train_digits: header %s but library %s\n", HATEBM_VERSION_STRING,
                hatebm_version());
        return 1;
    }
    TRY(hatebm_log_set(log_to_stderr, NULL));

    /* Configuration: the digits preset, a seed, the backend (one line), the
     * output folder, then command-line overrides. */
    TRY(hatebm_config_new(&cfg));
    TRY(hatebm_config_set(cfg, "preset", "digits"));
    TRY(hatebm_config_set(cfg, "seed", "1"));
    TRY(hatebm_config_set(cfg, "backend", backend != NULL ? backend : "cpu"));
    snprintf(text, sizeof text, "\"%s\"", out_dir);
    TRY(hatebm_config_set(cfg, "output.dir", text));
    for (i = 3; i < (unsigned long long)argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (eq == NULL || eq - argv[i] >= (long)sizeof text) {
            fprintf(stderr, "train_digits: expected KEY=VALUE, got `%s`\n", argv[i]);
            goto done;
        }
        memcpy(text, argv[i], (size_t)(eq - argv[i]));
        text[eq - argv[i]] = '\0';
        TRY(hatebm_config_set(cfg, text, eq + 1));
    }

    TRY(hatebm_session_new(cfg, &s));
    TRY(hatebm_session_backend_name(s, name, sizeof name, &n_name));
    TRY(hatebm_session_sizes(s, &sample_len, NULL));
    printf("train_digits: %llu steps on %s, outputs in %s\n", steps, name, out_dir);

    /* The training loop. */
    join(path, sizeof path, out_dir, "checkpoint.safetensors");
    for (i = 1; i <= steps; i++) {
        TRY(hatebm_session_step(s, &st));
        if (i % LOG_EVERY == 0 || i == steps) {
            printf("step %5llu  loss_ebm %+9.4f  E+ %+8.4f  E- %+8.4f  loss_gen %8.5f  "
                   "drift %.4f  clip %.2f  %.3f s\n",
                   i, st.loss_ebm, st.energy_pos, st.energy_neg,
                   st.loss_gen, st.langevin.drift_norm_res, st.langevin.clip_frac_res, st.seconds);
        }
        if (i % CKPT_EVERY == 0) {
            TRY(hatebm_session_save_checkpoint(s, path));
        }
    }
    TRY(hatebm_session_save_checkpoint(s, path));
    join(path, sizeof path, out_dir, "energy.safetensors");
    TRY(hatebm_session_save_weights(s, HATEBM_MODEL_ENERGY_EMA, path));
    join(path, sizeof path, out_dir, "generator.safetensors");
    TRY(hatebm_session_save_weights(s, HATEBM_MODEL_GENERATOR, path));

    /* Final samples: GRID_N images with the EMA weights, written as a PNG grid. */
    sp = hatebm_sample_default_params();
    sp.n = GRID_N;
    sp.seed = 7;
    samples = malloc(GRID_N * sample_len * sizeof *samples);
    if (samples == NULL) {
        goto done;
    }
    TRY(hatebm_session_sample(s, &sp, samples, GRID_N * sample_len));
    TRY(hatebm_session_image_shape(s, img, 3, &n_img));
    join(path, sizeof path, out_dir, "samples.png");
    if (n_img == 3) {
        TRY(hatebm_save_image_grid(path, samples, GRID_N * sample_len, GRID_N, img[0], img[1],
                                   img[2]));
        printf("train_digits: wrote %s\n", path);
    }
    printf("train_digits: OK\n");
    rc = 0;

done:
    free(samples);
    hatebm_session_free(s);
    hatebm_config_free(cfg);
    hatebm_log_set(NULL, NULL);
    return rc;
}
