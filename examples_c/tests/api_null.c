/*
 * Every entry point of the training/sampling API with a NULL handle or a NULL
 * required pointer: HATEBM_NULL_PARAMETER (or the documented default), a
 * message naming the argument, out-params untouched, no crash. Also NULL
 * strings vs invalid UTF-8 for every string argument.
 */
#include <string.h>

#include "check.h"

/* Expects `call` to return HATEBM_NULL_PARAMETER with `arg` in the message. */
#define CHECK_NULL(call, arg)                                                  \
    do {                                                                       \
        hatebm_last_error_clear();                                             \
        CHECK_STATUS(call, HATEBM_NULL_PARAMETER);                             \
        CHECK_CONTAINS(hatebm_last_error_message(), "`" arg "`");              \
    } while (0)

static const char BAD_UTF8[] = {'a', (char)0xC3, (char)0x28, 0};

int main(void) {
    hatebm_config *cfg = NULL, *sentinel_cfg = (hatebm_config *)(void *)&cfg;
    hatebm_session *s = NULL, *sentinel_s = (hatebm_session *)(void *)&s;
    hatebm_energy *e = NULL;
    hatebm_generator *g = NULL;
    hatebm_bank *b = NULL, *sentinel_b = (hatebm_bank *)(void *)&b;
    hatebm_langevin_params lp = hatebm_langevin_default_params();
    hatebm_sample_params sp = hatebm_sample_default_params();
    hatebm_langevin_stats ls;
    hatebm_step_stats st;
    float f[8] = {0};
    size_t n = 99, dims[4], slots[2] = {0, 1};
    uint64_t it = 99;
    char buf[16];

    /* config */
    CHECK_NULL(hatebm_config_new(NULL), "out");
    CHECK_NULL(hatebm_config_from_toml(NULL, &cfg), "toml");
    CHECK_NULL(hatebm_config_from_toml("seed = 1", NULL), "out");
    CHECK_NULL(hatebm_config_from_file(NULL, &cfg), "path");
    CHECK_NULL(hatebm_config_from_checkpoint(NULL, &cfg), "path");
    CHECK_NULL(hatebm_config_clone(NULL, &cfg), "cfg");
    CHECK_NULL(hatebm_config_set(NULL, "seed", "1"), "cfg");
    CHECK_NULL(hatebm_config_unset(NULL, "seed"), "cfg");
    CHECK_NULL(hatebm_config_to_toml(NULL, buf, sizeof buf, &n), "cfg");
    CHECK(cfg == NULL && n == 99);
    CHECK_OK(hatebm_config_new(&cfg));
    CHECK_NULL(hatebm_config_set(cfg, NULL, "1"), "key");
    CHECK_NULL(hatebm_config_set(cfg, "seed", NULL), "value");
    CHECK_NULL(hatebm_config_unset(cfg, NULL), "key");
    CHECK_NULL(hatebm_config_to_toml(cfg, buf, sizeof buf, NULL), "out_n");
    CHECK_NULL(hatebm_config_to_toml(cfg, NULL, 5, &n), "buf");
    CHECK_STATUS(hatebm_config_from_file(BAD_UTF8, &sentinel_cfg), HATEBM_INVALID_UTF8);
    CHECK_STATUS(hatebm_config_unset(cfg, BAD_UTF8), HATEBM_INVALID_UTF8);
    CHECK(sentinel_cfg == (hatebm_config *)(void *)&cfg);

    /* session */
    CHECK_NULL(hatebm_session_new(NULL, &s), "cfg");
    CHECK_NULL(hatebm_session_new(cfg, NULL), "out");
    CHECK_NULL(hatebm_session_resume(NULL, NULL, &s), "path");
    CHECK_NULL(hatebm_session_resume("x", NULL, NULL), "out");
    CHECK_STATUS(hatebm_session_resume(BAD_UTF8, NULL, &sentinel_s), HATEBM_INVALID_UTF8);
    CHECK(s == NULL && sentinel_s == (hatebm_session *)(void *)&s);
    CHECK_NULL(hatebm_session_save_checkpoint(NULL, "x"), "session");
    CHECK_NULL(hatebm_session_load_weights(NULL, 0, "x"), "session");
    CHECK_NULL(hatebm_session_save_weights(NULL, 0, "x"), "session");
    CHECK_NULL(hatebm_session_backend_name(NULL, buf, sizeof buf, &n), "session");
    CHECK_NULL(hatebm_session_config_toml(NULL, buf, sizeof buf, &n), "session");
    CHECK_NULL(hatebm_session_iteration(NULL, &it), "session");
    CHECK_NULL(hatebm_session_sample_shape(NULL, dims, 4, &n), "session");
    CHECK_NULL(hatebm_session_latent_shape(NULL, dims, 4, &n), "session");
    CHECK_NULL(hatebm_session_image_shape(NULL, dims, 4, &n), "session");
    CHECK_NULL(hatebm_session_sizes(NULL, &n, &n), "session");
    CHECK_NULL(hatebm_session_energy(NULL, f, 2, 1, f + 4, 1), "session");
    CHECK_NULL(hatebm_session_energy_grad(NULL, f, 2, 1, f + 2, 1, f + 4, 2), "session");
    CHECK_NULL(hatebm_session_generate(NULL, f, 2, 1, f + 4, 2), "session");
    CHECK_NULL(hatebm_session_generator_vjp(NULL, f, 2, f + 2, 2, 1, f + 4, 2), "session");
    CHECK_NULL(hatebm_session_langevin_params(NULL, &lp), "session");
    CHECK_NULL(hatebm_session_langevin(NULL, &lp, NULL, 0, f, 2, 1, &ls), "session");
    CHECK_NULL(hatebm_session_step(NULL, &st), "session");
    CHECK_NULL(hatebm_session_train(NULL, 1, NULL, NULL), "session");
    CHECK_NULL(hatebm_session_last_stats(NULL, &st), "session");
    CHECK_NULL(hatebm_session_bank_size(NULL, &n), "session");
    CHECK_NULL(hatebm_session_bank_read(NULL, 0, NULL, 0, f, 2), "session");
    CHECK_NULL(hatebm_session_sample(NULL, &sp, f, 2), "session");
    CHECK(n == 99 && it == 99);

    /* callback models and the custom sampler */
    CHECK_NULL(hatebm_energy_new(NULL, NULL, dims, 1, &e), "vtable");
    CHECK_NULL(hatebm_generator_new(NULL, NULL, dims, 1, dims, 1, &g), "vtable");
    CHECK_NULL(hatebm_langevin_run_custom(NULL, NULL, &lp, NULL, 0, f, 2, 1, &ls), "energy");
    hatebm_callback_set_error(NULL); /* allowed: clears */
    hatebm_callback_set_error(BAD_UTF8); /* outside a callback: ignored */

    /* bank */
    CHECK_NULL(hatebm_bank_new(4, 1, 1, 0, NULL), "out");
    CHECK_NULL(hatebm_bank_init_from_generator(NULL, NULL, 1, 0), "bank");
    CHECK_NULL(hatebm_bank_capacity(NULL, &n), "bank");
    CHECK_NULL(hatebm_bank_draw_slots(NULL, 0, 0, slots, 2), "bank");
    CHECK_NULL(hatebm_bank_gather(NULL, slots, 2, NULL, 0, f, 2), "bank");
    CHECK_NULL(hatebm_bank_overwrite(NULL, slots, 2, NULL, 0, f, 2), "bank");
    CHECK_OK(hatebm_bank_new(4, 1, 1, 0, &b));
    CHECK_NULL(hatebm_bank_init_from_generator(b, NULL, 1, 0), "generator");
    CHECK_NULL(hatebm_bank_capacity(b, NULL), "out");
    CHECK_NULL(hatebm_bank_draw_slots(b, 0, 0, NULL, 2), "out_slots");
    CHECK_NULL(hatebm_bank_gather(b, NULL, 2, NULL, 0, f, 2), "slots");
    CHECK_NULL(hatebm_bank_gather(b, slots, 2, NULL, 0, NULL, 2), "out_x");
    CHECK_NULL(hatebm_bank_overwrite(b, slots, 2, f, 2, NULL, 2), "x");
    CHECK_STATUS(hatebm_bank_new(0, 1, 1, 0, &sentinel_b), HATEBM_INVALID_ARGUMENT);
    CHECK(sentinel_b == (hatebm_bank *)(void *)&b);

    /* writers */
    CHECK_NULL(hatebm_save_image_grid(NULL, f, 8, 2, 1, 2, 2), "path");
    CHECK_NULL(hatebm_save_image_grid("x.png", NULL, 8, 2, 1, 2, 2), "data");
    CHECK_STATUS(hatebm_save_image_grid(BAD_UTF8, f, 8, 2, 1, 2, 2), HATEBM_INVALID_UTF8);
    CHECK_NULL(hatebm_save_npy(NULL, f, 8, dims, 1), "path");
    CHECK_NULL(hatebm_save_npy("x.npy", f, 8, NULL, 1), "shape");

    /* Versioned params read only struct_size before rejecting a wrong one. */
    memset(&lp, 0xFF, sizeof lp);
    lp.struct_size = 4;
    CHECK_STATUS(hatebm_langevin_run_custom(e, NULL, &lp, NULL, 0, f, 2, 1, NULL),
                 HATEBM_NULL_PARAMETER); /* energy is NULL: checked first */

    hatebm_bank_free(b);
    hatebm_config_free(cfg);
    return check_summary("api_null");
}
