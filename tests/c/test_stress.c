/* test_stress: 4 submitting threads x 100 000 reads (AURA_STRESS_OPS overrides the per-thread
 * count) on one engine, while the main thread alone runs aura_wait. Every callback must run
 * exactly once, with the right byte count and the right data, and nothing may stay pending.
 *
 * Functions: aura_read from 4 threads at once, aura_wait, aura_pending_count, aura_get_stats.
 */
#include "test_common.h"

#include <pthread.h>

#define THREADS 4
#define FILE_SIZE (1 << 20)
#define READ_SIZE 64

static aura_engine_t *E;
static int fd;
static long ops_per_thread = 100000;
static unsigned char *calls;   /* per request: how many times its callback ran */
static unsigned char *bufs;    /* per request: READ_SIZE bytes */
/* GCC/Clang __atomic builtins: the same code compiles as C11 and as C++. */
static long completed;
static long bad;
static int submit_failures;
#define ATOMIC_ADD(p, v) __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST)
#define ATOMIC_LOAD(p) __atomic_load_n(p, __ATOMIC_SEQ_CST)

static off_t offset_of(long id) {
    return (off_t)(((unsigned long)id * 7919ul * READ_SIZE) % (FILE_SIZE - READ_SIZE));
}

static void on_read(aura_request_t *req, ssize_t result, void *ud) {
    long id = (long)(intptr_t)ud;
    (void)req;
    calls[id]++;
    if (result != READ_SIZE ||
        !t_matches(bufs + (size_t)id * READ_SIZE, READ_SIZE, 4, (size_t)offset_of(id)))
        ATOMIC_ADD(&bad, 1);
    ATOMIC_ADD(&completed, 1);
}

static void *submitter(void *arg) {
    long t = (long)(intptr_t)arg;
    for (long i = 0; i < ops_per_thread; i++) {
        long id = t * ops_per_thread + i;
        for (;;) {
            aura_request_t *r = aura_read(E, fd, aura_buf(bufs + (size_t)id * READ_SIZE),
                                          READ_SIZE, offset_of(id), 0, on_read,
                                          (void *)(intptr_t)id);
            if (r) break;
            if (errno != EAGAIN) { /* EAGAIN: the ring is at its limit; the waiter reaps */
                ATOMIC_ADD(&submit_failures, 1);
                return NULL;
            }
            sched_yield();
        }
    }
    return NULL;
}

int main(void) {
    t_name = "test_stress";
    const char *env = getenv("AURA_STRESS_OPS");
    if (env && atol(env) > 0) ops_per_thread = atol(env);
    long total = THREADS * ops_per_thread;
    char path[512];
    fd = t_tempfile(path, sizeof path, 4, FILE_SIZE);
    E = t_engine();
    calls = (unsigned char *)calloc((size_t)total, 1);
    bufs = (unsigned char *)calloc((size_t)total, READ_SIZE);
    REQUIRE(calls && bufs);

    pthread_t th[THREADS];
    for (long t = 0; t < THREADS; t++)
        REQUIRE(pthread_create(&th[t], NULL, submitter, (void *)(intptr_t)t) == 0);
    /* Reap until every read completed, or 120 s passed without progress. */
    time_t last_progress = time(NULL);
    long seen = 0;
    while (ATOMIC_LOAD(&completed) < total && ATOMIC_LOAD(&submit_failures) == 0) {
        int n = aura_wait(E, 100);
        if (n < 0 && errno != ETIMEDOUT) REQUIRE(0);
        if (n == 0) sched_yield(); /* nothing submitted yet */
        long now_done = ATOMIC_LOAD(&completed);
        if (now_done != seen) {
            seen = now_done;
            last_progress = time(NULL);
        } else if (time(NULL) - last_progress > 120) {
            fprintf(stderr, "no completion for 120 s: %ld of %ld done, %d pending\n", now_done,
                    total, aura_pending_count(E));
            break;
        }
    }
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);

    CHECK_EQ(ATOMIC_LOAD(&submit_failures), 0);
    CHECK_EQ(ATOMIC_LOAD(&completed), total);
    CHECK_EQ(ATOMIC_LOAD(&bad), 0);
    long never = 0, twice = 0;
    for (long i = 0; i < total; i++) {
        never += calls[i] == 0;
        twice += calls[i] > 1;
    }
    CHECK_EQ(never, 0);
    CHECK_EQ(twice, 0);
    CHECK_EQ(aura_pending_count(E), 0);
    aura_stats_t st;
    CHECK_OK(aura_get_stats(E, &st, sizeof st));
    CHECK_EQ(st.ops_completed, total);
    CHECK_EQ(st.bytes_transferred, total * READ_SIZE);
    CHECK_EQ(st.current_in_flight, 0);
    aura_destroy(E);
    free(calls);
    free(bufs);
    close(fd);
    unlink(path);
    printf("%d threads x %ld reads: every callback ran exactly once\n", THREADS, ops_per_thread);
    return t_finish();
}
