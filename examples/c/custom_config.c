/* custom_config: an engine built from aura_options_t, driven with 2000 reads, then its
 * statistics: engine totals, each ring's controller state, latency percentiles and the pool.
 *
 *   custom_config FILE      (any readable file of at least 4 KiB)
 */
#define _GNU_SOURCE
#include <aura.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define READS 2000
#define DEPTH 32

static int completed, failed;

static void on_read(aura_request_t *req, ssize_t result, void *ud) {
    (void)req;
    (void)ud;
    if (result < 0) failed++;
    completed++;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE\n", argv[0]);
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) {
        fprintf(stderr, "open %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    aura_options_t opts;
    aura_options_init(&opts);
    opts.queue_depth = 128;                     /* SQ entries per ring */
    opts.ring_count = 2;                        /* instead of one per CPU */
    opts.ring_select = AURA_SELECT_ROUND_ROBIN; /* spread submissions over both rings */
    opts.max_p99_latency_ms = 5.0;              /* the controller backs off above 5 ms P99 */
    opts.min_in_flight = 4;
    opts.batch_threshold = 8;                   /* flush every 8 submissions */
    aura_engine_t *engine = aura_create_with_options(&opts);
    if (!engine) {
        fprintf(stderr, "aura_create_with_options: %s\n", strerror(errno));
        return 1;
    }
    /* Runtime knobs can change later too. */
    if (aura_set_max_p99_latency(engine, 10.0) != 0 || aura_set_batch_threshold(engine, -1) != 0)
        return 1;

    void *bufs[DEPTH];
    for (int i = 0; i < DEPTH; i++) {
        bufs[i] = aura_buffer_alloc(engine, 4096);
        if (!bufs[i]) return 1;
    }
    int submitted = 0;
    while (completed < READS) {
        while (submitted < READS && submitted - completed < DEPTH) {
            if (!aura_read(engine, fd, aura_buf(bufs[submitted % DEPTH]), 4096, 0,
                           AURA_NO_FLAGS, on_read, NULL)) {
                if (errno == EAGAIN) break; /* at the ring's limit: reap first */
                fprintf(stderr, "aura_read: %s\n", strerror(errno));
                return 1;
            }
            submitted++;
        }
        if (aura_wait(engine, 1000) < 0 && errno != ETIMEDOUT) return 1;
    }

    aura_stats_t st;
    if (aura_get_stats(engine, &st, sizeof st) != 0) return 1;
    printf("engine: %lld ops, %lld bytes, peak in flight %d, failed %d\n",
           (long long)st.ops_completed, (long long)st.bytes_transferred, st.peak_in_flight,
           failed);
    int rings = aura_get_ring_count(engine);
    printf("rings: %d\n", rings);
    for (int i = 0; i < rings; i++) {
        aura_ring_stats_t rs;
        aura_histogram_t h;
        if (aura_get_ring_stats(engine, i, &rs, sizeof rs) != 0) return 1;
        if (aura_get_histogram(engine, i, &h, sizeof h) != 0) return 1;
        double p50 = aura_histogram_percentile(&h, 50.0);
        double p99 = aura_histogram_percentile(&h, 99.0);
        printf("ring %d: %lld ops, queue depth %d, limit %d, phase %s, p50 %.3f ms, p99 %.3f "
               "ms (%u samples)\n",
               i, (long long)rs.ops_completed, rs.queue_depth, rs.in_flight_limit,
               aura_phase_name(rs.aimd_phase), p50, p99, h.total_count);
    }
    aura_buffer_stats_t bs;
    if (aura_get_buffer_stats(engine, &bs, sizeof bs) != 0) return 1;
    printf("buffer pool: %zu buffers, %zu bytes, %d shards\n", bs.total_buffers,
           bs.total_allocated_bytes, bs.shard_count);

    for (int i = 0; i < DEPTH; i++) aura_buffer_free(engine, bufs[i]);
    aura_destroy(engine);
    close(fd);
    return failed == 0 && st.ops_completed == READS && rings == 2 ? 0 : 1;
}
