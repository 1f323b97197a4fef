/*
 * A harness that runs MPI itself hands libhatebm its communicator:
 * hatebm_session_new_mpi(cfg, MPI_Comm_c2f(comm), &s). Run under
 * `mpirun -np 2` against a libhatebm built with `--features mpi`
 * (scripts/mpi-c-test.sh). Each rank trains 4 iterations of a toy run with
 * dist.shards = 2; rank 0 also trains the same run alone (a plain session)
 * and checks that the networks agree bit for bit; then both ranks check that
 * their networks agree with each other, and MPI is still usable afterwards
 * (the library duplicated the communicator and did not finalise MPI).
 */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include <hatebm.h>

#define NP 8
#define STEPS 4

static hatebm_config *config(int rank) {
    char dir[256];
    hatebm_config *cfg = NULL;
    const char *toml =
        "preset = \"toy2d\"\n"
        "seed = 9\n"
        "threads = 1\n"
        "[data]\nkind = \"toy\"\nname = \"ring8\"\nn = 256\n"
        "[model.energy]\nkind = \"mlp\"\ndims = [2, 16, 16, 1]\n"
        "[model.generator]\nkind = \"mlp\"\ndims = [2, 16, 16, 2]\n"
        "[train]\nsteps = 100\nbatch_size = 16\nbank_size = 64\n"
        "[langevin]\nsteps = 3\n"
        "[dist]\nshards = 2\n"
        "[output]\nprogress = \"never\"\nplot = false\n";
    if (hatebm_config_from_toml(toml, &cfg) != HATEBM_OK) {
        return NULL;
    }
    snprintf(dir, sizeof dir, "\"target/c-tests/mpi/rank%d\"", rank);
    hatebm_config_set(cfg, "output.dir", dir);
    return cfg;
}

static int fingerprint(hatebm_session *s, float *out) {
    float x[NP * 2];
    int i;
    hatebm_step_stats st;
    for (i = 0; i < STEPS; i++) {
        if (hatebm_session_step(s, &st) != HATEBM_OK) {
            return 1;
        }
    }
    for (i = 0; i < NP * 2; i++) {
        x[i] = 0.1f * (float)i - 0.7f;
    }
    return hatebm_session_energy(s, x, NP * 2, NP, out, NP) != HATEBM_OK;
}

int main(int argc, char **argv) {
    int rank = 0, size = 0, failures = 0, provided = 0;
    float mine[NP], alone[NP], theirs[2 * NP];
    hatebm_session *s = NULL;
    hatebm_config *cfg;

    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    cfg = config(rank);
    if (cfg == NULL || size != 2) {
        fprintf(stderr, "mpi_session: run me with mpirun -np 2\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    if (hatebm_session_new_mpi(cfg, (int)MPI_Comm_c2f(MPI_COMM_WORLD), &s) != HATEBM_OK) {
        fprintf(stderr, "rank %d: %s\n", rank, hatebm_last_error_message());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    failures += fingerprint(s, mine);
    hatebm_session_free(s);
    /* The harness's MPI still works: the ranks compare their networks. */
    MPI_Allgather(mine, NP, MPI_FLOAT, theirs, NP, MPI_FLOAT, MPI_COMM_WORLD);
    failures += memcmp(theirs, theirs + NP, NP * sizeof(float)) != 0;
    if (rank == 0) {
        s = NULL;
        if (hatebm_session_new(cfg, &s) != HATEBM_OK) {
            failures++;
        } else {
            failures += fingerprint(s, alone);
            failures += memcmp(mine, alone, sizeof mine) != 0;
            hatebm_session_free(s);
        }
    }
    hatebm_config_free(cfg);
    MPI_Allreduce(MPI_IN_PLACE, &failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) {
        printf("mpi_session: %s (%d failures)\n", failures == 0 ? "OK" : "FAILED", failures);
    }
    MPI_Finalize();
    return failures == 0 ? 0 : 1;
}
