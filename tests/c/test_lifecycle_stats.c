/* test_lifecycle_stats: engine options, buffers, statistics, histogram helpers, Prometheus text,
 * runtime setters, fatal error, phase names and logging.
 *
 * Functions: aura_options_init, aura_create, aura_create_with_options, aura_destroy,
 * aura_buffer_alloc, aura_buffer_free, aura_pending_count, aura_get_stats, aura_get_ring_count,
 * aura_get_ring_stats, aura_get_histogram, aura_get_buffer_stats, aura_phase_name,
 * aura_histogram_percentile, aura_histogram_bucket_upper_bound_us, aura_metrics_prometheus,
 * aura_set_max_p99_latency, aura_set_min_in_flight, aura_set_batch_threshold,
 * aura_get_fatal_error, aura_in_callback_context, aura_set_log_handler, aura_log_emit.
 */
#include "test_common.h"

#include <math.h>

static void bad_options(void) {
    aura_options_t o;
#define BAD_OPTION(stmt)                                                                     \
    do {                                                                                     \
        aura_options_init(&o);                                                               \
        stmt;                                                                                \
        CHECK_NULL_ERRNO(aura_create_with_options(&o), EINVAL);                              \
    } while (0)
    BAD_OPTION(o.struct_size = 0);
    BAD_OPTION(o.struct_size = sizeof o + 8);
    BAD_OPTION(o._reserved[0] = 1);
    BAD_OPTION(o._reserved[5] = 0x80000000u);
    BAD_OPTION(o.queue_depth = 3);
    BAD_OPTION(o.queue_depth = 32769);
    BAD_OPTION(o.queue_depth = -1);
    BAD_OPTION(o.ring_count = 1025);
    BAD_OPTION(o.ring_count = -1);
    BAD_OPTION(o.min_in_flight = -1);
    BAD_OPTION((o.queue_depth = 64, o.min_in_flight = 65));
    BAD_OPTION((o.queue_depth = 64, o.initial_in_flight = 65));
    BAD_OPTION((o.min_in_flight = 16, o.initial_in_flight = 8));
    BAD_OPTION(o.max_p99_latency_ms = -1.0);
    BAD_OPTION(o.max_p99_latency_ms = NAN);
    BAD_OPTION(o.buffer_alignment = 3000);
    BAD_OPTION(o.ring_select = (aura_ring_select_t)9);
    BAD_OPTION(o.batch_threshold = -2);
#undef BAD_OPTION

    /* NULL options = defaults; a smaller struct_size (older caller) is accepted. */
    aura_engine_t *e = aura_create_with_options(NULL);
    CHECK(e != NULL);
    aura_destroy(e);
    aura_options_init(&o);
    o.struct_size = offsetof(aura_options_t, batch_threshold);
    e = aura_create_with_options(&o);
    CHECK(e != NULL);
    aura_destroy(e);
    /* Every ring-selection mode, single_thread, disable_adaptive. */
    for (int mode = 0; mode < 4; mode++) {
        aura_options_init(&o);
        o.ring_select = (aura_ring_select_t)mode;
        o.ring_count = 2;
        o.queue_depth = 64;
        o.single_thread = mode == 3;
        o.disable_adaptive = mode == 1;
        e = aura_create_with_options(&o);
        CHECK(e != NULL);
        if (e) CHECK_EQ(aura_get_ring_count(e), 2);
        aura_destroy(e);
    }
}

static void buffers(aura_engine_t *e) {
    CHECK_NULL_ERRNO(aura_buffer_alloc(NULL, 4096), EINVAL);
    CHECK_NULL_ERRNO(aura_buffer_alloc(e, 0), EINVAL);
    CHECK_NULL_ERRNO(aura_buffer_alloc(e, ((size_t)128 << 20) + 1), EINVAL);
    aura_buffer_stats_t bs0, bs1;
    CHECK_OK(aura_get_buffer_stats(e, &bs0, sizeof bs0));
    void *a = aura_buffer_alloc(e, 100);
    void *b = aura_buffer_alloc(e, 1 << 20);
    REQUIRE(a && b);
    CHECK((uintptr_t)a % (uintptr_t)sysconf(_SC_PAGESIZE) == 0);
    CHECK((uintptr_t)b % (uintptr_t)sysconf(_SC_PAGESIZE) == 0);
    memset(a, 0x5a, 100);
    memset(b, 0xa5, 1 << 20);
    CHECK_OK(aura_get_buffer_stats(e, &bs1, sizeof bs1));
    CHECK(bs1.total_buffers >= bs0.total_buffers + 2);
    CHECK(bs1.total_allocated_bytes >= bs0.total_allocated_bytes + 100 + (1 << 20));
    CHECK(bs1.shard_count >= 1);
    aura_buffer_free(e, a);
    aura_buffer_free(e, b);
    aura_buffer_free(e, NULL);   /* does nothing */
    aura_buffer_free(NULL, a);   /* does nothing */
    /* Freed buffers may stay in the pool's caches: the counts must not grow, at least. */
    aura_buffer_stats_t bs2;
    CHECK_OK(aura_get_buffer_stats(e, &bs2, sizeof bs2));
    CHECK(bs2.total_buffers <= bs1.total_buffers);
    CHECK_FAIL_ERRNO(aura_get_buffer_stats(NULL, &bs1, sizeof bs1), EINVAL);
    CHECK_FAIL_ERRNO(aura_get_buffer_stats(e, NULL, sizeof bs1), EINVAL);
    CHECK_FAIL_ERRNO(aura_get_buffer_stats(e, &bs1, 0), EINVAL);
    /* A buffer allocated and left: aura_destroy frees it (no leak under the sanitizers). */
    CHECK(aura_buffer_alloc(e, 8192) != NULL);
}

static int completed;
static void count_cb(aura_request_t *req, ssize_t result, void *ud) {
    (void)req;
    (void)ud;
    if (result == 4096) completed++;
}

static void stats(aura_engine_t *e, int fd) {
    static char buf[4096];
    for (int i = 0; i < 200; i++)
        CHECK(aura_read(e, fd, aura_buf(buf), 4096, 0, 0, count_cb, NULL) != NULL);
    CHECK(aura_pending_count(e) >= 0);
    REQUIRE(t_wait_count(e, &completed, 200) == 0);
    CHECK_EQ(aura_pending_count(e), 0);
    CHECK_EQ(aura_pending_count(NULL), -1);

    aura_stats_t st;
    memset(&st, 0xff, sizeof st);
    CHECK_OK(aura_get_stats(e, &st, sizeof st));
    CHECK_EQ(st.ops_completed, 200);
    CHECK_EQ(st.bytes_transferred, 200 * 4096);
    CHECK_EQ(st.current_in_flight, 0);
    CHECK(st.peak_in_flight >= 1 && st.optimal_in_flight >= 1);
    CHECK(st._reserved[0] == 0 && st._reserved[3] == 0);
    CHECK_FAIL_ERRNO(aura_get_stats(NULL, &st, sizeof st), EINVAL);
    CHECK_FAIL_ERRNO(aura_get_stats(e, NULL, sizeof st), EINVAL);
    CHECK_FAIL_ERRNO(aura_get_stats(e, &st, 0), EINVAL);
    /* An older caller's smaller struct: only that prefix is written. */
    unsigned char small[24];
    memset(small, 0xee, sizeof small);
    CHECK_OK(aura_get_stats(e, (aura_stats_t *)(void *)small, 16));
    int64_t ops;
    memcpy(&ops, small, 8);
    CHECK_EQ(ops, 200);
    CHECK(small[16] == 0xee && small[23] == 0xee);
    /* A larger size than ours: at most sizeof(aura_stats_t) is written. */
    unsigned char big[sizeof(aura_stats_t) + 16];
    memset(big, 0xee, sizeof big);
    CHECK_OK(aura_get_stats(e, (aura_stats_t *)(void *)big, sizeof big));
    CHECK(big[sizeof(aura_stats_t)] == 0xee);

    int rings = aura_get_ring_count(e);
    CHECK(rings >= 1);
    CHECK_FAIL_ERRNO(aura_get_ring_count(NULL), EINVAL);
    int64_t ring_ops = 0;
    for (int i = 0; i < rings; i++) {
        aura_ring_stats_t rs;
        CHECK_OK(aura_get_ring_stats(e, i, &rs, sizeof rs));
        ring_ops += rs.ops_completed;
        CHECK(rs.queue_depth == 1024);
        CHECK(rs.aimd_phase >= 0 && rs.aimd_phase <= 6);
        CHECK(rs.in_flight_limit >= 1);
        aura_histogram_t h;
        CHECK_OK(aura_get_histogram(e, i, &h, sizeof h));
        CHECK_EQ(h.max_tracked_us, AURA_HISTOGRAM_MAX_US);
        CHECK_EQ(h.tier_count, AURA_HISTOGRAM_TIER_COUNT);
    }
    CHECK_EQ(ring_ops, 200);
    aura_ring_stats_t rs;
    aura_histogram_t h;
    memset(&rs, 0xff, sizeof rs);
    CHECK_FAIL_ERRNO(aura_get_ring_stats(e, rings, &rs, sizeof rs), EINVAL);
    CHECK(rs.ops_completed == 0 && rs.queue_depth == 0); /* zeroed */
    CHECK_FAIL_ERRNO(aura_get_ring_stats(e, -1, &rs, sizeof rs), EINVAL);
    CHECK_FAIL_ERRNO(aura_get_ring_stats(NULL, 0, &rs, sizeof rs), EINVAL);
    CHECK_FAIL_ERRNO(aura_get_ring_stats(e, 0, NULL, sizeof rs), EINVAL);
    CHECK_FAIL_ERRNO(aura_get_ring_stats(e, 0, &rs, 0), EINVAL);
    memset(&h, 0xff, sizeof h);
    CHECK_FAIL_ERRNO(aura_get_histogram(e, rings + 5, &h, sizeof h), EINVAL);
    CHECK(h.total_count == 0 && h.buckets[0] == 0); /* zeroed */
    CHECK_FAIL_ERRNO(aura_get_histogram(NULL, 0, &h, sizeof h), EINVAL);
    CHECK_FAIL_ERRNO(aura_get_histogram(e, 0, NULL, sizeof h), EINVAL);
    CHECK_FAIL_ERRNO(aura_get_histogram(e, 0, &h, 0), EINVAL);
}

static void histogram_helpers(aura_engine_t *e) {
    aura_histogram_t h;
    CHECK_OK(aura_get_histogram(e, 0, &h, sizeof h)); /* real tier layout */
    memset(h.buckets, 0, sizeof h.buckets);
    h.overflow = 0;
    h.total_count = 0;
    CHECK(aura_histogram_percentile(&h, 50.0) == -1.0); /* empty */
    CHECK(aura_histogram_percentile(NULL, 50.0) == -1.0);
    /* 100 samples in bucket 5 ([50, 60) us): every percentile is its midpoint, 0.055 ms. */
    h.buckets[5] = 100;
    h.total_count = 100;
    CHECK(fabs(aura_histogram_percentile(&h, 50.0) - 0.055) < 1e-9);
    CHECK(fabs(aura_histogram_percentile(&h, 99.0) - 0.055) < 1e-9);
    CHECK(aura_histogram_percentile(&h, -1.0) == -1.0);
    CHECK(aura_histogram_percentile(&h, 100.5) == -1.0);
    /* One sample in overflow: P99.5 lands there (100 ms). */
    h.overflow = 1;
    h.total_count = 101;
    CHECK(fabs(aura_histogram_percentile(&h, 99.5) - 100.0) < 1e-9);
    CHECK_EQ(aura_histogram_bucket_upper_bound_us(&h, 0), 10);
    CHECK_EQ(aura_histogram_bucket_upper_bound_us(&h, 99), 1000);
    CHECK_EQ(aura_histogram_bucket_upper_bound_us(&h, 100), 1050);
    CHECK_EQ(aura_histogram_bucket_upper_bound_us(&h, 319), 100000);
    CHECK_EQ(aura_histogram_bucket_upper_bound_us(&h, 320), 0);
    CHECK_EQ(aura_histogram_bucket_upper_bound_us(&h, -1), 0);
    CHECK_EQ(aura_histogram_bucket_upper_bound_us(NULL, 0), 0);

    static const char *names[] = {"BASELINE", "PROBING",   "STEADY",     "BACKOFF",
                                  "SETTLING", "CONVERGED", "PASSTHROUGH"};
    for (int i = 0; i < 7; i++) CHECK(strcmp(aura_phase_name(i), names[i]) == 0);
    CHECK(strcmp(aura_phase_name(7), "UNKNOWN") == 0);
    CHECK(strcmp(aura_phase_name(-1), "UNKNOWN") == 0);
}

static void prometheus(aura_engine_t *e) {
    CHECK_FAIL_ERRNO(aura_metrics_prometheus(NULL, NULL, 0), EINVAL);
    char tiny[16];
    CHECK_FAIL_ERRNO(aura_metrics_prometheus(e, NULL, 100), EINVAL);
    errno = 0;
    int need = aura_metrics_prometheus(e, tiny, sizeof tiny);
    CHECK(need < -16 && errno == ENOBUFS);
    errno = 0;
    int need0 = aura_metrics_prometheus(e, NULL, 0);
    CHECK(need0 < 0 && errno == ENOBUFS);
    size_t size = (size_t)(-need) + 1;
    char *text = (char *)malloc(size);
    REQUIRE(text != NULL);
    int n = aura_metrics_prometheus(e, text, size);
    CHECK(n > 0 && (size_t)n < size && text[n] == '\0');
    CHECK(strstr(text, "aura_metrics_schema_info{schema=\"v0\",stability=\"experimental\"} 1") !=
          NULL);
    CHECK(strstr(text, "# TYPE aura_ops_completed_total counter") != NULL);
    CHECK(strstr(text, "aura_ops_completed_total 200") != NULL);
    CHECK(strstr(text, "aura_ring_ops_completed_total{ring=\"0\"}") != NULL);
    CHECK(strstr(text, "aura_latency_seconds_count{ring=\"0\"}") != NULL);
    CHECK(strstr(text, "aura_buffer_pool_shards") != NULL);
    free(text);
}

static void setters(aura_engine_t *e) {
    CHECK_OK(aura_set_max_p99_latency(e, 2.5));
    CHECK_OK(aura_set_max_p99_latency(e, 0.0));
    CHECK_FAIL_ERRNO(aura_set_max_p99_latency(e, -1.0), EINVAL);
    CHECK_FAIL_ERRNO(aura_set_max_p99_latency(e, INFINITY), EINVAL);
    CHECK_FAIL_ERRNO(aura_set_max_p99_latency(NULL, 1.0), EINVAL);
    CHECK_OK(aura_set_min_in_flight(e, 8));
    CHECK_FAIL_ERRNO(aura_set_min_in_flight(e, 0), EINVAL);
    CHECK_FAIL_ERRNO(aura_set_min_in_flight(e, 1025), EINVAL);
    CHECK_FAIL_ERRNO(aura_set_min_in_flight(NULL, 8), EINVAL);
    CHECK_OK(aura_set_batch_threshold(e, 16));
    CHECK_OK(aura_set_batch_threshold(e, 0));
    CHECK_OK(aura_set_batch_threshold(e, -1));
    CHECK_FAIL_ERRNO(aura_set_batch_threshold(e, -2), EINVAL);
    CHECK_FAIL_ERRNO(aura_set_batch_threshold(NULL, 4), EINVAL);
    CHECK_EQ(aura_get_fatal_error(e), 0);
    CHECK_EQ(aura_get_fatal_error(NULL), -1);
    CHECK(!aura_in_callback_context());
}

typedef struct {
    int calls;
    int last_level;
    char last[300];
} log_rec;

static void logger(int level, const char *msg, void *ud) {
    log_rec *l = (log_rec *)ud;
    l->calls++;
    l->last_level = level;
    snprintf(l->last, sizeof l->last, "%s", msg);
}

static void logging(aura_engine_t *e) {
    log_rec l;
    memset(&l, 0, sizeof l);
    aura_log_emit(AURA_LOG_ERR, "no handler: %d", 1); /* silent */
    aura_set_log_handler(logger, &l);
    aura_log_emit(AURA_LOG_NOTICE, "hello %s %d", "world", 42);
    CHECK_EQ(l.calls, 1);
    CHECK_EQ(l.last_level, AURA_LOG_NOTICE);
    CHECK(strcmp(l.last, "hello world 42") == 0);
    /* Truncated to 255 characters. */
    char longmsg[600];
    memset(longmsg, 'x', sizeof longmsg - 1);
    longmsg[sizeof longmsg - 1] = '\0';
    aura_log_emit(AURA_LOG_DEBUG, "%s", longmsg);
    CHECK_EQ(l.calls, 2);
    CHECK_EQ(strlen(l.last), 255);
    aura_log_emit(AURA_LOG_INFO, NULL); /* NULL fmt: nothing */
    CHECK_EQ(l.calls, 2);
    /* The library's own warning: freeing a pointer the pool never handed out. */
    static char foreign[32];
    aura_buffer_free(e, foreign);
    CHECK_EQ(l.calls, 3);
    CHECK_EQ(l.last_level, AURA_LOG_WARN);
    aura_set_log_handler(NULL, NULL);
    aura_log_emit(AURA_LOG_ERR, "after removal");
    CHECK_EQ(l.calls, 3);
}

int main(void) {
    t_name = "test_lifecycle_stats";
    aura_engine_t *e = t_engine();
    char path[512];
    int fd = t_tempfile(path, sizeof path, 1, 4096);
    bad_options();
    buffers(e);
    stats(e, fd);
    histogram_helpers(e);
    prometheus(e);
    setters(e);
    logging(e);
    aura_destroy(e);
    close(fd);
    unlink(path);
    return t_finish();
}
