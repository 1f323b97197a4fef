/*
 * hatebm_config: construction from nothing / TOML / a file / a checkpoint,
 * key-by-key edits (including the backend), errors that name the key and
 * suggest the closest one, the copy-out of the resolved TOML, and the rule that
 * a failed edit leaves the configuration unchanged.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"

static char *to_toml(const hatebm_config *cfg) {
    size_t n = 0;
    char *buf;
    if (hatebm_config_to_toml(cfg, NULL, 0, &n) != HATEBM_INSUFFICIENT_SIZE) {
        return NULL;
    }
    buf = malloc(n);
    if (buf != NULL && hatebm_config_to_toml(cfg, buf, n, &n) != HATEBM_OK) {
        free(buf);
        return NULL;
    }
    return buf;
}

static void test_set_and_print(void) {
    hatebm_config *cfg = NULL;
    char *toml, *after;
    char small[8] = "sentinl";
    size_t n = 0;

    hatebm_config_free(NULL); /* no-op */
    CHECK_OK(hatebm_config_new(&cfg));
    CHECK_OK(hatebm_config_set(cfg, "preset", "toy2d"));
    CHECK_OK(hatebm_config_set(cfg, "seed", "3"));
    CHECK_OK(hatebm_config_set(cfg, "backend", "cpu"));
    CHECK_OK(hatebm_config_set(cfg, "langevin.steps", "7"));
    CHECK_OK(hatebm_config_set(cfg, "model.energy.dims", "[2, 16, 1]"));
    CHECK_OK(hatebm_config_set(cfg, "output.dir", "\"out/x y\""));
    toml = to_toml(cfg);
    CHECK(toml != NULL);
    CHECK_CONTAINS(toml, "backend = \"cpu\"");
    CHECK_CONTAINS(toml, "seed = 3");
    CHECK_CONTAINS(toml, "steps = 7");
    CHECK_CONTAINS(toml, "dims = [2, 16, 1]");
    CHECK_CONTAINS(toml, "out/x y");

    /* A size query (NULL, 0) reports the size without touching the last error. */
    CHECK_STATUS(hatebm_config_set(cfg, "sed", "1"), HATEBM_CONFIG);
    CHECK_STATUS(hatebm_config_to_toml(cfg, NULL, 0, &n), HATEBM_INSUFFICIENT_SIZE);
    CHECK(n == strlen(toml) + 1);
    CHECK_CONTAINS(hatebm_last_error_message(), "sed");

    /* Copy-out: too small -> size reported, buffer untouched. */
    CHECK_STATUS(hatebm_config_to_toml(cfg, small, sizeof small, &n), HATEBM_INSUFFICIENT_SIZE);
    CHECK(toml != NULL && n == strlen(toml) + 1);
    CHECK_STREQ(small, "sentinl");

    /* Unknown keys: HATEBM_CONFIG naming the key and the closest valid one. */
    CHECK_STATUS(hatebm_config_set(cfg, "langevin.step", "5"), HATEBM_CONFIG);
    CHECK_CONTAINS(hatebm_last_error_message(), "hatebm_config_set");
    CHECK_CONTAINS(hatebm_last_error_message(), "step");
    CHECK_CONTAINS(hatebm_last_error_message(), "steps");
    CHECK_STATUS(hatebm_config_set(cfg, "sed", "1"), HATEBM_CONFIG);
    CHECK_CONTAINS(hatebm_last_error_message(), "seed");
    /* A value is one TOML value: the rest is refused, not dropped (issue 16). */
    CHECK_STATUS(hatebm_config_set(cfg, "seed", "1\n[train]\nsteps = 5"), HATEBM_CONFIG);
    CHECK_CONTAINS(hatebm_last_error_message(), "more than one TOML value");
    CHECK_STATUS(hatebm_config_set(cfg, "", "1"), HATEBM_CONFIG);
    CHECK_STATUS(hatebm_config_set(cfg, "langevin..steps", "1"), HATEBM_CONFIG);
    /* Bad values and types. */
    CHECK_STATUS(hatebm_config_set(cfg, "langevin.temperature", "-1"), HATEBM_CONFIG);
    CHECK_CONTAINS(hatebm_last_error_message(), "temperature");
    CHECK_STATUS(hatebm_config_set(cfg, "seed", "\"abc\""), HATEBM_CONFIG);
    CHECK_STATUS(hatebm_config_set(cfg, "backend", "gpu:7"), HATEBM_CONFIG);
    CHECK_CONTAINS(hatebm_last_error_message(), "backend");
    CHECK_STATUS(hatebm_config_set(cfg, "preset", "toy3d"), HATEBM_CONFIG);
    CHECK_CONTAINS(hatebm_last_error_message(), "toy2d");
    /* Invalid UTF-8 in key or value. */
    CHECK_STATUS(hatebm_config_set(cfg, "se\xC3\x28", "1"), HATEBM_INVALID_UTF8);
    CHECK_CONTAINS(hatebm_last_error_message(), "`key`");
    CHECK_STATUS(hatebm_config_set(cfg, "seed", "\xFF"), HATEBM_INVALID_UTF8);
    CHECK_CONTAINS(hatebm_last_error_message(), "`value`");

    /* None of the failures changed anything. */
    after = to_toml(cfg);
    CHECK(toml != NULL && after != NULL && strcmp(toml, after) == 0);
    free(after);
    free(toml);

    /* unset: back to the preset's value; unsetting twice fails. */
    CHECK_OK(hatebm_config_unset(cfg, "langevin.steps"));
    toml = to_toml(cfg);
    CHECK_CONTAINS(toml, "steps = 20"); /* toy2d's langevin.steps */
    free(toml);
    CHECK_STATUS(hatebm_config_unset(cfg, "langevin.steps"), HATEBM_CONFIG);
    CHECK_CONTAINS(hatebm_last_error_message(), "not set");
    hatebm_config_free(cfg);
}

static void test_toml_file_clone(void) {
    hatebm_config *a = NULL, *b = NULL, *c = NULL, *untouched = (hatebm_config *)&a;
    char path[512], *ta, *tb;
    FILE *f;

    CHECK_OK(hatebm_config_from_toml("preset = \"toy2d\"\nseed = 5\n[langevin]\nsteps = 3\n", &a));
    CHECK_STATUS(hatebm_config_from_toml("seed = = 1", &untouched), HATEBM_CONFIG);
    CHECK(untouched == (hatebm_config *)&a); /* outputs only on success */
    CHECK_CONTAINS(hatebm_last_error_message(), "TOML");
    CHECK_STATUS(hatebm_config_from_toml("[langevin]\nstepz = 3\n", &untouched), HATEBM_CONFIG);
    CHECK_CONTAINS(hatebm_last_error_message(), "steps");
    CHECK_STATUS(hatebm_config_from_toml("seed = 1\xFF", &untouched), HATEBM_INVALID_UTF8);

    test_path(path, sizeof path, "config", "cfg.toml");
    f = fopen(path, "w");
    CHECK(f != NULL);
    if (f != NULL) {
        fputs("preset = \"toy2d\"\nseed = 5\n[langevin]\nsteps = 3\n", f);
        fclose(f);
    }
    CHECK_OK(hatebm_config_from_file(path, &b));
    ta = to_toml(a);
    tb = to_toml(b);
    CHECK(ta != NULL && tb != NULL && strcmp(ta, tb) == 0);
    free(tb);
    remove(path);
    CHECK_STATUS(hatebm_config_from_file(path, &untouched), HATEBM_IO);
    CHECK_CONTAINS(hatebm_last_error_message(), "hatebm-config-cfg.toml");

    /* A clone is independent of its original. */
    CHECK_OK(hatebm_config_clone(a, &c));
    CHECK_OK(hatebm_config_set(a, "seed", "99"));
    tb = to_toml(c);
    CHECK(ta != NULL && tb != NULL && strcmp(ta, tb) == 0);
    free(ta);
    free(tb);
    hatebm_config_free(a);
    hatebm_config_free(b);
    hatebm_config_free(c);
}

static void test_session_level_checks(void) {
    hatebm_config *cfg = NULL;
    hatebm_session *s = NULL;
    char *toml;

    /* A backend that is a valid spec but not compiled into this build (or a
     * device that is not there) fails when the session is built. */
    CHECK_OK(hatebm_config_from_toml("preset = \"toy2d\"\n", &cfg));
    CHECK_OK(hatebm_config_set(cfg, "backend", "tch:cuda:0"));
    {
        hatebm_status st = hatebm_session_new(cfg, &s);
        CHECK(st == HATEBM_BACKEND_UNAVAILABLE || st == HATEBM_DEVICE_UNAVAILABLE);
        CHECK(s == NULL);
        CHECK_CONTAINS(hatebm_last_error_message(), "tch:cuda:0");
    }
    /* A generator-less baseline mode on a preset drops the preset's
     * generator (issue 16, item 5) ... */
    CHECK_OK(hatebm_config_set(cfg, "backend", "cpu"));
    CHECK_OK(hatebm_config_set(cfg, "train.mode", "short_run"));
    toml = to_toml(cfg);
    CHECK(toml != NULL && strstr(toml, "[model.generator]") == NULL);
    free(toml);
    CHECK_OK(hatebm_session_new(cfg, &s));
    hatebm_session_free(s);
    s = NULL;
    /* ... but a generator the caller sets explicitly is a cross-field error,
     * reported when resolving. */
    CHECK_OK(hatebm_config_set(cfg, "model.generator", "{ kind = \"mlp\", dims = [2, 16, 2] }"));
    toml = to_toml(cfg);
    CHECK(toml == NULL);
    CHECK_STATUS(hatebm_session_new(cfg, &s), HATEBM_CONFIG);
    CHECK_CONTAINS(hatebm_last_error_message(), "generator");
    CHECK(s == NULL);
    /* ... which unsetting the key repairs. */
    CHECK_OK(hatebm_config_unset(cfg, "model.generator"));
    CHECK_OK(hatebm_session_new(cfg, &s));
    hatebm_session_free(s);
    s = NULL;
    hatebm_config_free(cfg);

    /* A checkpoint that does not exist / is not a checkpoint. */
    CHECK_STATUS(hatebm_config_from_checkpoint("/nonexistent/ck.safetensors", &cfg), HATEBM_IO);
}

int main(void) {
    test_set_and_print();
    test_toml_file_clone();
    test_session_level_checks();
    return check_summary("config");
}
