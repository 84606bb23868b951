/* test_stress: 4 submitting threads x 100 000 reads (AURA_STRESS_OPS overrides the per-thread
 * count) on one engine, while the main thread alone runs aura_wait. Every callback must run
 * exactly once, with the right byte count and the right data, and nothing may stay pending.
 *
 * Then linked chains: on a THREAD_LOCAL engine whose one ring all threads share, 4 threads x
 * (count / 5) chains of read -> read (aura_request_set_linked), every 7th successor cancelled
 * while it may still be held. Each callback runs once; a successor that was not cancelled runs
 * after its head's callback and reads the right data; a cancelled one gets -ECANCELED or, if
 * the cancel came too late, its data; and no more requests are cancelled than cancels
 * succeeded.
 *
 * Then cancels racing completions: 4 threads x (count / 5) reads on a fresh engine, each thread
 * cancelling every 5th read right after submitting it, while the main thread reaps (so the read
 * may complete, and its request slot be reused by another thread's read, during the cancel).
 * Each callback runs once; every read gets -ECANCELED or its data; and no more reads are
 * cancelled than cancels succeeded (a cancel that lost the race to a completion reports
 * EALREADY and cancels nothing). A read no cancel was aimed at can only be cancelled through a
 * handle whose request had already finished when the cancel began (the API's rule for stale
 * handles: they answer for whatever the slot holds now), which is counted, not failed.
 *
 * Functions: aura_read from 4 threads at once, aura_wait, aura_pending_count, aura_get_stats,
 * aura_request_set_linked, aura_cancel.
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

/* Reads block `id` into its buffer on `e`, retrying while the ring is at its limit (EAGAIN: the
 * waiter reaps); NULL (counted in submit_failures) on any other error. */
static aura_request_t *read_retrying(aura_engine_t *e, long id, aura_callback_t cb, long ud) {
    for (;;) {
        aura_request_t *r = aura_read(e, fd, aura_buf(bufs + (size_t)id * READ_SIZE), READ_SIZE,
                                      offset_of(id), 0, cb, (void *)(intptr_t)ud);
        if (r) return r;
        if (errno != EAGAIN) {
            ATOMIC_ADD(&submit_failures, 1);
            return NULL;
        }
        sched_yield();
    }
}

static void *submitter(void *arg) {
    long t = (long)(intptr_t)arg;
    for (long i = 0; i < ops_per_thread; i++) {
        long id = t * ops_per_thread + i;
        if (!read_retrying(E, id, on_read, id)) return NULL;
    }
    return NULL;
}

/* Runs aura_wait on `e` until `*done` reaches `target` (or a submitter failed), or 120 s pass
 * without progress; then joins the submitting threads. */
static void reap_until(aura_engine_t *e, long *done, long target, pthread_t *th) {
    time_t last_progress = time(NULL);
    long seen = 0;
    while (ATOMIC_LOAD(done) < target && ATOMIC_LOAD(&submit_failures) == 0) {
        int n = aura_wait(e, 100);
        if (n < 0 && errno != ETIMEDOUT) REQUIRE(0);
        if (n == 0) sched_yield(); /* nothing submitted yet */
        long now_done = ATOMIC_LOAD(done);
        if (now_done != seen) {
            seen = now_done;
            last_progress = time(NULL);
        } else if (time(NULL) - last_progress > 120) {
            fprintf(stderr, "no completion for 120 s: %ld of %ld done, %d pending\n", now_done,
                    target, aura_pending_count(e));
            break;
        }
    }
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
}

/* Cancels `r` on `e`: 0 (the cancel went to the kernel, or completed a request still queued)
 * counts in `*ok`; EALREADY (it completed first) is fine; EAGAIN (no room for the cancel: the
 * waiter reaps) is retried; anything else counts in `*bad`. */
static void cancel_retrying(aura_engine_t *e, aura_request_t *r, long *ok, long *bad) {
    for (;;) {
        if (aura_cancel(e, r) == 0) {
            ATOMIC_ADD(ok, 1);
            return;
        }
        if (errno == EALREADY) return;
        if (errno != EAGAIN) {
            ATOMIC_ADD(bad, 1);
            return;
        }
        sched_yield();
    }
}

/* --- linked chains ------------------------------------------------------------------------ */

static aura_engine_t *L;
static long chains_per_thread;
static unsigned char *head_done; /* per chain: the head's callback ran (count) */
static unsigned char *tail_calls; /* per chain: the successor's callback ran (count) */
static unsigned char *head_cancelled; /* per chain: the head got -ECANCELED (a stale cancel) */
static long link_done, link_bad, link_cancelled, link_cancel_ok;

static void on_head(aura_request_t *req, ssize_t result, void *ud) {
    long c = (long)(intptr_t)ud;
    (void)req;
    if (result == -ECANCELED) {
        /* Only a stale tail handle's cancel can reach a head (see on_tail). */
        head_cancelled[c] = 1;
        ATOMIC_ADD(&link_cancelled, 1);
    } else if (result != READ_SIZE) {
        ATOMIC_ADD(&link_bad, 1);
    }
    head_done[c]++;
    ATOMIC_ADD(&link_done, 1);
}

static void on_tail(aura_request_t *req, ssize_t result, void *ud) {
    long c = (long)(intptr_t)ud;
    (void)req;
    tail_calls[c]++;
    int cancelled = c % 7 == 0;
    if (result == -ECANCELED) {
        /* Counted against the cancels that succeeded (a stale tail handle, whose request had
         * finished before its cancel began, may cancel whatever reused its slot); a tail
         * cancelled because its head was is not a cancel of its own. */
        if (!head_cancelled[c]) ATOMIC_ADD(&link_cancelled, 1);
        (void)cancelled;
    } else if (result != READ_SIZE || head_done[c] != 1 ||
               !t_matches(bufs + ((size_t)c * 2 + 1) * READ_SIZE, READ_SIZE, 4,
                          (size_t)offset_of(c * 2 + 1))) {
        ATOMIC_ADD(&link_bad, 1);
    }
    ATOMIC_ADD(&link_done, 1);
}

static void *chainer(void *arg) {
    long t = (long)(intptr_t)arg;
    for (long i = 0; i < chains_per_thread; i++) {
        long c = t * chains_per_thread + i;
        aura_request_t *h = read_retrying(L, c * 2, on_head, c);
        if (!h) return NULL;
        /* EINVAL only when the head already completed: then the tail runs unlinked. */
        if (aura_request_set_linked(h) != 0 && errno != EINVAL) ATOMIC_ADD(&link_bad, 1);
        aura_request_t *tail = read_retrying(L, c * 2 + 1, on_tail, c);
        if (!tail) return NULL;
        if (c % 7 == 0) cancel_retrying(L, tail, &link_cancel_ok, &link_bad);
    }
    return NULL;
}

static void linked_stress(void) {
    chains_per_thread = ops_per_thread / 5 > 0 ? ops_per_thread / 5 : 1;
    long chains = THREADS * chains_per_thread;
    aura_options_t o;
    aura_options_init(&o);
    o.ring_select = AURA_SELECT_THREAD_LOCAL;
    o.ring_count = 1;
    L = aura_create_with_options(&o);
    REQUIRE(L != NULL);
    head_done = (unsigned char *)calloc((size_t)chains, 1);
    tail_calls = (unsigned char *)calloc((size_t)chains, 1);
    head_cancelled = (unsigned char *)calloc((size_t)chains, 1);
    REQUIRE(head_done && tail_calls && head_cancelled);
    memset(bufs, 0, (size_t)chains * 2 * READ_SIZE);
    pthread_t th[THREADS];
    for (long t = 0; t < THREADS; t++)
        REQUIRE(pthread_create(&th[t], NULL, chainer, (void *)(intptr_t)t) == 0);
    reap_until(L, &link_done, 2 * chains, th);
    CHECK_EQ(ATOMIC_LOAD(&submit_failures), 0);
    CHECK_EQ(ATOMIC_LOAD(&link_done), 2 * chains);
    CHECK_EQ(ATOMIC_LOAD(&link_bad), 0);
    CHECK(ATOMIC_LOAD(&link_cancelled) <= ATOMIC_LOAD(&link_cancel_ok));
    long wrong = 0;
    for (long c = 0; c < chains; c++) wrong += head_done[c] != 1 || tail_calls[c] != 1;
    CHECK_EQ(wrong, 0);
    CHECK_EQ(aura_pending_count(L), 0);
    aura_destroy(L);
    free(head_done);
    free(tail_calls);
    free(head_cancelled);
    printf("%d threads x %ld linked chains: every callback ran exactly once, in order\n",
           THREADS, chains_per_thread);
}

/* --- cancels racing completions --------------------------------------------------------- */

static aura_engine_t *C;
static long cancel_per_thread;
static unsigned char *cancel_calls; /* per read: how many times its callback ran */
static long cancel_done, cancel_bad, cancel_hits, cancel_ok, cancel_stray;

static void on_cancellable(aura_request_t *req, ssize_t result, void *ud) {
    long id = (long)(intptr_t)ud;
    (void)req;
    cancel_calls[id]++;
    if (result == -ECANCELED) {
        ATOMIC_ADD(id % 5 == 0 ? &cancel_hits : &cancel_stray, 1);
    } else if (result != READ_SIZE ||
               !t_matches(bufs + (size_t)id * READ_SIZE, READ_SIZE, 4, (size_t)offset_of(id))) {
        ATOMIC_ADD(&cancel_bad, 1);
    }
    ATOMIC_ADD(&cancel_done, 1);
}

static void *canceller(void *arg) {
    long t = (long)(intptr_t)arg;
    for (long i = 0; i < cancel_per_thread; i++) {
        long id = t * cancel_per_thread + i;
        aura_request_t *r = read_retrying(C, id, on_cancellable, id);
        if (!r) return NULL;
        if (id % 5 == 0) cancel_retrying(C, r, &cancel_ok, &cancel_bad);
    }
    return NULL;
}

static void cancel_stress(void) {
    cancel_per_thread = ops_per_thread / 5 > 0 ? ops_per_thread / 5 : 1;
    long total = THREADS * cancel_per_thread;
    C = t_engine();
    cancel_calls = (unsigned char *)calloc((size_t)total, 1);
    REQUIRE(cancel_calls != NULL);
    memset(bufs, 0, (size_t)total * READ_SIZE);
    pthread_t th[THREADS];
    for (long t = 0; t < THREADS; t++)
        REQUIRE(pthread_create(&th[t], NULL, canceller, (void *)(intptr_t)t) == 0);
    reap_until(C, &cancel_done, total, th);
    CHECK_EQ(ATOMIC_LOAD(&submit_failures), 0);
    CHECK_EQ(ATOMIC_LOAD(&cancel_done), total);
    CHECK_EQ(ATOMIC_LOAD(&cancel_bad), 0);
    CHECK(ATOMIC_LOAD(&cancel_hits) + ATOMIC_LOAD(&cancel_stray) <= ATOMIC_LOAD(&cancel_ok));
    long wrong = 0;
    for (long i = 0; i < total; i++) wrong += cancel_calls[i] != 1;
    CHECK_EQ(wrong, 0);
    CHECK_EQ(aura_pending_count(C), 0);
    aura_destroy(C);
    free(cancel_calls);
    printf("%d threads x %ld reads, every 5th cancelled at once (%ld of %ld before they ran, %ld "
           "through a stale handle): every callback ran exactly once\n",
           THREADS, cancel_per_thread, ATOMIC_LOAD(&cancel_hits), total / 5,
           ATOMIC_LOAD(&cancel_stray));
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
    reap_until(E, &completed, total, th);

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
    linked_stress();
    cancel_stress();
    free(calls);
    free(bufs);
    close(fd);
    unlink(path);
    printf("%d threads x %ld reads: every callback ran exactly once\n", THREADS, ops_per_thread);
    return t_finish();
}
