/* test_abi: the header contract, checked at compile time and at run time.
 *
 * - every public struct's size and every field's offset (x86-64 / LP64 ABI of AuraIO 0.6);
 * - every constant's value (op types, flags, Linux-valued constants, version macros);
 * - every one of the 55 exported functions has the documented signature (assigned to a
 *   pointer of the exact type, which also proves `&aura_read` works despite the arity macros);
 * - both call shapes compile for every op that takes flags: the seed's flag-less form and the
 *   0.6 form with aura_submit_flags_t before the callback; both fail with EINVAL on a NULL
 *   engine at run time;
 * - the three inline helpers build the documented descriptors.
 */
#include "test_common.h"

#include <stddef.h>

#ifdef __cplusplus
#define SA(c, m) static_assert(c, m)
#else
#define SA(c, m) _Static_assert(c, m)
#endif
#define SIZE_IS(T, n) SA(sizeof(T) == (n), "sizeof(" #T ") != " #n)
#define OFF_IS(T, f, n) SA(offsetof(T, f) == (n), "offsetof(" #T ", " #f ") != " #n)

#if !defined(__x86_64__)
#error "the ABI numbers below are the x86-64 ones"
#endif

/* aura_buf_t: 24 bytes. */
SIZE_IS(aura_buf_t, 24);
OFF_IS(aura_buf_t, type, 0);
OFF_IS(aura_buf_t, u.ptr, 8);
OFF_IS(aura_buf_t, u.fixed.index, 8);
OFF_IS(aura_buf_t, u.fixed.offset, 16);
SA(sizeof(aura_buf_type_t) == 4, "enum size");

/* aura_options_t: 88 bytes. */
SIZE_IS(aura_options_t, 88);
OFF_IS(aura_options_t, struct_size, 0);
OFF_IS(aura_options_t, queue_depth, 8);
OFF_IS(aura_options_t, ring_count, 12);
OFF_IS(aura_options_t, initial_in_flight, 16);
OFF_IS(aura_options_t, min_in_flight, 20);
OFF_IS(aura_options_t, max_p99_latency_ms, 24);
OFF_IS(aura_options_t, buffer_alignment, 32);
OFF_IS(aura_options_t, disable_adaptive, 40);
OFF_IS(aura_options_t, enable_sqpoll, 41);
OFF_IS(aura_options_t, sqpoll_idle_ms, 44);
OFF_IS(aura_options_t, ring_select, 48);
OFF_IS(aura_options_t, single_thread, 52);
OFF_IS(aura_options_t, batch_threshold, 56);
OFF_IS(aura_options_t, _reserved, 60);
SA(sizeof(((aura_options_t *)0)->_reserved) == 24, "options _reserved[6]");

/* aura_stats_t: 72 bytes. */
SIZE_IS(aura_stats_t, 72);
OFF_IS(aura_stats_t, ops_completed, 0);
OFF_IS(aura_stats_t, bytes_transferred, 8);
OFF_IS(aura_stats_t, current_throughput_bps, 16);
OFF_IS(aura_stats_t, p99_latency_ms, 24);
OFF_IS(aura_stats_t, current_in_flight, 32);
OFF_IS(aura_stats_t, optimal_in_flight, 36);
OFF_IS(aura_stats_t, peak_in_flight, 40);
OFF_IS(aura_stats_t, optimal_batch_size, 44);
OFF_IS(aura_stats_t, adaptive_spills, 48);
OFF_IS(aura_stats_t, _reserved, 56);
SA(sizeof(((aura_stats_t *)0)->_reserved) == 16, "stats _reserved[4]");

/* aura_ring_stats_t: 72 bytes. */
SIZE_IS(aura_ring_stats_t, 72);
OFF_IS(aura_ring_stats_t, ops_completed, 0);
OFF_IS(aura_ring_stats_t, bytes_transferred, 8);
OFF_IS(aura_ring_stats_t, pending_count, 16);
OFF_IS(aura_ring_stats_t, peak_in_flight, 20);
OFF_IS(aura_ring_stats_t, in_flight_limit, 24);
OFF_IS(aura_ring_stats_t, batch_threshold, 28);
OFF_IS(aura_ring_stats_t, p99_latency_ms, 32);
OFF_IS(aura_ring_stats_t, throughput_bps, 40);
OFF_IS(aura_ring_stats_t, aimd_phase, 48);
OFF_IS(aura_ring_stats_t, queue_depth, 52);
OFF_IS(aura_ring_stats_t, _reserved, 56);

/* aura_histogram_t: 1352 bytes. */
SIZE_IS(aura_histogram_t, 1352);
OFF_IS(aura_histogram_t, buckets, 0);
OFF_IS(aura_histogram_t, overflow, 1280);
OFF_IS(aura_histogram_t, total_count, 1284);
OFF_IS(aura_histogram_t, max_tracked_us, 1288);
OFF_IS(aura_histogram_t, tier_count, 1292);
OFF_IS(aura_histogram_t, tier_start_us, 1296);
OFF_IS(aura_histogram_t, tier_width_us, 1312);
OFF_IS(aura_histogram_t, tier_base_bucket, 1328);
OFF_IS(aura_histogram_t, _reserved, 1344);

/* aura_buffer_stats_t: 40 bytes. */
SIZE_IS(aura_buffer_stats_t, 40);
OFF_IS(aura_buffer_stats_t, total_allocated_bytes, 0);
OFF_IS(aura_buffer_stats_t, total_buffers, 8);
OFF_IS(aura_buffer_stats_t, shard_count, 16);
OFF_IS(aura_buffer_stats_t, _reserved, 20);

/* Constants. */
SA(AURA_VERSION_MAJOR == 0 && AURA_VERSION_MINOR == 6 && AURA_VERSION_PATCH == 0, "version");
SA(AURA_VERSION == 600, "AURA_VERSION");
SA(AURA_OP_READ == 0 && AURA_OP_WRITE == 1 && AURA_OP_READV == 2 && AURA_OP_WRITEV == 3, "ops");
SA(AURA_OP_FSYNC == 4 && AURA_OP_FDATASYNC == 5 && AURA_OP_CANCEL == 6, "ops");
SA(AURA_OP_READ_FIXED == 7 && AURA_OP_WRITE_FIXED == 8 && AURA_OP_OPENAT == 9, "ops");
SA(AURA_OP_CLOSE == 10 && AURA_OP_STATX == 11 && AURA_OP_FALLOCATE == 12, "ops");
SA(AURA_OP_FTRUNCATE == 13 && AURA_OP_SYNC_FILE_RANGE == 14 && AURA_OP__COUNT == 17, "ops");
SA(AURA_NO_FLAGS == 0 && AURA_FIXED_FILE == 1, "submit flags");
SA(AURA_BUF_UNREGISTERED == 0 && AURA_BUF_REGISTERED == 1, "buf types");
SA(AURA_SELECT_ADAPTIVE == 0 && AURA_SELECT_CPU_LOCAL == 1, "ring select");
SA(AURA_SELECT_ROUND_ROBIN == 2 && AURA_SELECT_THREAD_LOCAL == 3, "ring select");
SA(AURA_REG_BUFFERS == 0 && AURA_REG_FILES == 1, "reg types");
SA(AURA_PHASE_BASELINE == 0 && AURA_PHASE_PROBING == 1 && AURA_PHASE_STEADY == 2, "phases");
SA(AURA_PHASE_BACKOFF == 3 && AURA_PHASE_SETTLING == 4 && AURA_PHASE_CONVERGED == 5, "phases");
SA(AURA_PHASE_PASSTHROUGH == 6, "phases");
SA(AURA_HISTOGRAM_BUCKETS == 320 && AURA_HISTOGRAM_TIER_COUNT == 4, "histogram");
SA(AURA_HISTOGRAM_MAX_US == 100000, "histogram");
SA(AURA_LOG_ERR == 3 && AURA_LOG_WARN == 4 && AURA_LOG_NOTICE == 5, "log levels");
SA(AURA_LOG_INFO == 6 && AURA_LOG_DEBUG == 7, "log levels");
SA(AURA_FSYNC_DEFAULT == 0 && AURA_FSYNC_DATASYNC == 1, "fsync");
SA(AURA_FALLOC_DEFAULT == 0 && AURA_FALLOC_KEEP_SIZE == FALLOC_FL_KEEP_SIZE, "falloc");
SA(AURA_FALLOC_PUNCH_HOLE == FALLOC_FL_PUNCH_HOLE, "falloc");
SA(AURA_FALLOC_COLLAPSE_RANGE == FALLOC_FL_COLLAPSE_RANGE, "falloc");
SA(AURA_FALLOC_ZERO_RANGE == FALLOC_FL_ZERO_RANGE, "falloc");
SA(AURA_FALLOC_INSERT_RANGE == FALLOC_FL_INSERT_RANGE, "falloc");
SA(AURA_SYNC_RANGE_WAIT_BEFORE == SYNC_FILE_RANGE_WAIT_BEFORE, "sync range");
SA(AURA_SYNC_RANGE_WRITE == SYNC_FILE_RANGE_WRITE, "sync range");
SA(AURA_SYNC_RANGE_WAIT_AFTER == SYNC_FILE_RANGE_WAIT_AFTER, "sync range");
SA(AURA_AT_SYMLINK_NOFOLLOW == AT_SYMLINK_NOFOLLOW && AURA_AT_EMPTY_PATH == AT_EMPTY_PATH, "at");
SA(AURA_STATX_TYPE == STATX_TYPE && AURA_STATX_MODE == STATX_MODE, "statx");
SA(AURA_STATX_NLINK == STATX_NLINK && AURA_STATX_UID == STATX_UID, "statx");
SA(AURA_STATX_GID == STATX_GID && AURA_STATX_ATIME == STATX_ATIME, "statx");
SA(AURA_STATX_MTIME == STATX_MTIME && AURA_STATX_CTIME == STATX_CTIME, "statx");
SA(AURA_STATX_INO == STATX_INO && AURA_STATX_SIZE == STATX_SIZE, "statx");
SA(AURA_STATX_BLOCKS == STATX_BLOCKS && AURA_STATX_BTIME == STATX_BTIME, "statx");
SA(AURA_STATX_BASIC_STATS == STATX_BASIC_STATS && AURA_STATX_ALL == 0xfff, "statx");
SA(AURA_O_RDONLY == O_RDONLY && AURA_O_WRONLY == O_WRONLY && AURA_O_RDWR == O_RDWR, "open");
SA(AURA_O_CREAT == O_CREAT && AURA_O_EXCL == O_EXCL && AURA_O_NOCTTY == O_NOCTTY, "open");
SA(AURA_O_TRUNC == O_TRUNC && AURA_O_APPEND == O_APPEND && AURA_O_NONBLOCK == O_NONBLOCK, "open");
SA(AURA_O_DSYNC == O_DSYNC && AURA_O_DIRECT == O_DIRECT && AURA_O_DIRECTORY == O_DIRECTORY,
   "open");
SA(AURA_O_NOFOLLOW == O_NOFOLLOW && AURA_O_NOATIME == O_NOATIME, "open");
SA(AURA_O_CLOEXEC == O_CLOEXEC && AURA_O_SYNC == O_SYNC, "open");

/* Every export, assigned to a pointer of its documented type. `&aura_read` etc. name the
 * exported functions even though function-like macros of the same names exist. */
typedef struct {
    void (*options_init)(aura_options_t *);
    aura_engine_t *(*create)(void);
    aura_engine_t *(*create_with_options)(const aura_options_t *);
    void (*destroy)(aura_engine_t *);
    aura_request_t *(*read)(aura_engine_t *, int, aura_buf_t, size_t, off_t, aura_submit_flags_t,
                            aura_callback_t, void *);
    aura_request_t *(*write)(aura_engine_t *, int, aura_buf_t, size_t, off_t,
                             aura_submit_flags_t, aura_callback_t, void *);
    aura_request_t *(*readv)(aura_engine_t *, int, const struct iovec *, int, off_t,
                             aura_submit_flags_t, aura_callback_t, void *);
    aura_request_t *(*writev)(aura_engine_t *, int, const struct iovec *, int, off_t,
                              aura_submit_flags_t, aura_callback_t, void *);
    aura_request_t *(*fsync)(aura_engine_t *, int, unsigned int, aura_submit_flags_t,
                             aura_callback_t, void *);
    aura_request_t *(*openat)(aura_engine_t *, int, const char *, int, mode_t,
                              aura_submit_flags_t, aura_callback_t, void *);
    aura_request_t *(*close)(aura_engine_t *, int, aura_submit_flags_t, aura_callback_t, void *);
    aura_request_t *(*statx)(aura_engine_t *, int, const char *, int, unsigned int,
                             struct statx *, aura_submit_flags_t, aura_callback_t, void *);
    aura_request_t *(*fallocate)(aura_engine_t *, int, int, off_t, off_t, aura_submit_flags_t,
                                 aura_callback_t, void *);
    aura_request_t *(*ftruncate)(aura_engine_t *, int, off_t, aura_submit_flags_t,
                                 aura_callback_t, void *);
    aura_request_t *(*sync_file_range)(aura_engine_t *, int, off_t, off_t, unsigned int,
                                       aura_submit_flags_t, aura_callback_t, void *);
    int (*cancel)(aura_engine_t *, aura_request_t *);
    bool (*request_pending)(const aura_request_t *);
    int (*request_fd)(const aura_request_t *);
    void *(*request_user_data)(const aura_request_t *);
    aura_op_type_t (*request_op_type)(const aura_request_t *);
    bool (*request_is_linked)(const aura_request_t *);
    int (*request_set_linked)(aura_request_t *);
    int (*get_poll_fd)(const aura_engine_t *);
    int (*poll)(aura_engine_t *);
    int (*wait)(aura_engine_t *, int);
    int (*flush)(aura_engine_t *);
    void (*run)(aura_engine_t *);
    void (*stop)(aura_engine_t *);
    int (*drain)(aura_engine_t *, int);
    void *(*buffer_alloc)(aura_engine_t *, size_t);
    void (*buffer_free)(aura_engine_t *, void *);
    int (*register_buffers)(aura_engine_t *, const struct iovec *, unsigned int);
    int (*register_files)(aura_engine_t *, const int *, unsigned int);
    int (*update_file)(aura_engine_t *, int, int);
    int (*unregister)(aura_engine_t *, aura_reg_type_t);
    int (*request_unregister)(aura_engine_t *, aura_reg_type_t);
    int (*pending_count)(const aura_engine_t *);
    int (*get_stats)(const aura_engine_t *, aura_stats_t *, size_t);
    int (*get_ring_count)(const aura_engine_t *);
    int (*get_ring_stats)(const aura_engine_t *, int, aura_ring_stats_t *, size_t);
    int (*get_histogram)(const aura_engine_t *, int, aura_histogram_t *, size_t);
    int (*get_buffer_stats)(const aura_engine_t *, aura_buffer_stats_t *, size_t);
    const char *(*phase_name)(int);
    double (*histogram_percentile)(const aura_histogram_t *, double);
    int (*histogram_bucket_upper_bound_us)(const aura_histogram_t *, int);
    int (*metrics_prometheus)(aura_engine_t *, char *, size_t);
    int (*set_max_p99_latency)(aura_engine_t *, double);
    int (*set_min_in_flight)(aura_engine_t *, int);
    int (*set_batch_threshold)(aura_engine_t *, int);
    int (*get_fatal_error)(const aura_engine_t *);
    bool (*in_callback_context)(void);
    void (*set_log_handler)(aura_log_fn, void *);
    void (*log_emit)(int, const char *, ...);
    const char *(*version)(void);
    int (*version_int)(void);
} api_table;

static const api_table api = {
    &aura_options_init, &aura_create, &aura_create_with_options, &aura_destroy,
    &aura_read, &aura_write, &aura_readv, &aura_writev, &aura_fsync, &aura_openat, &aura_close,
    &aura_statx, &aura_fallocate, &aura_ftruncate, &aura_sync_file_range, &aura_cancel,
    &aura_request_pending, &aura_request_fd, &aura_request_user_data, &aura_request_op_type,
    &aura_request_is_linked, &aura_request_set_linked, &aura_get_poll_fd, &aura_poll,
    &aura_wait, &aura_flush, &aura_run, &aura_stop, &aura_drain, &aura_buffer_alloc,
    &aura_buffer_free, &aura_register_buffers, &aura_register_files, &aura_update_file,
    &aura_unregister, &aura_request_unregister, &aura_pending_count, &aura_get_stats,
    &aura_get_ring_count, &aura_get_ring_stats, &aura_get_histogram, &aura_get_buffer_stats,
    &aura_phase_name, &aura_histogram_percentile, &aura_histogram_bucket_upper_bound_us,
    &aura_metrics_prometheus, &aura_set_max_p99_latency, &aura_set_min_in_flight,
    &aura_set_batch_threshold, &aura_get_fatal_error, &aura_in_callback_context,
    &aura_set_log_handler, &aura_log_emit, &aura_version, &aura_version_int,
};

/* Inline helpers as values too. */
static aura_buf_t (*const helper_buf)(const void *) = &aura_buf;
static aura_buf_t (*const helper_fixed)(int, size_t) = &aura_buf_fixed;
static aura_buf_t (*const helper_fixed_idx)(int) = &aura_buf_fixed_idx;

static void never_called(aura_request_t *req, ssize_t result, void *ud) {
    (void)req;
    (void)result;
    (void)ud;
    fprintf(stderr, "a callback ran for a refused submission\n");
    abort();
}

int main(void) {
    t_name = "test_abi";
    char buf[16];
    struct iovec iov = {buf, sizeof buf};
    struct statx sx;

    /* Version. */
    CHECK(strcmp(aura_version(), AURA_VERSION_STRING) == 0);
    CHECK(strcmp(AURA_VERSION_STRING, "0.6.0") == 0);
    CHECK_EQ(aura_version_int(), AURA_VERSION);
    CHECK(api.version == &aura_version && api.version_int() == 600);

    /* The seed's flag-less shape: 7 arguments to aura_read (and the like for every op). */
    CHECK_NULL_ERRNO(aura_read(NULL, 0, aura_buf(buf), 16, 0, never_called, NULL), EINVAL);
    CHECK_NULL_ERRNO(aura_write(NULL, 0, aura_buf(buf), 16, 0, never_called, NULL), EINVAL);
    CHECK_NULL_ERRNO(aura_readv(NULL, 0, &iov, 1, 0, never_called, NULL), EINVAL);
    CHECK_NULL_ERRNO(aura_writev(NULL, 0, &iov, 1, 0, never_called, NULL), EINVAL);
    CHECK_NULL_ERRNO(aura_fsync(NULL, 0, AURA_FSYNC_DEFAULT, never_called, NULL), EINVAL);
    CHECK_NULL_ERRNO(aura_openat(NULL, AT_FDCWD, "x", O_RDONLY, 0, never_called, NULL), EINVAL);
    CHECK_NULL_ERRNO(aura_close(NULL, 0, never_called, NULL), EINVAL);
    CHECK_NULL_ERRNO(aura_statx(NULL, AT_FDCWD, "x", 0, AURA_STATX_ALL, &sx, never_called, NULL),
                     EINVAL);
    CHECK_NULL_ERRNO(aura_fallocate(NULL, 0, 0, 0, 16, never_called, NULL), EINVAL);
    CHECK_NULL_ERRNO(aura_ftruncate(NULL, 0, 16, never_called, NULL), EINVAL);
    CHECK_NULL_ERRNO(aura_sync_file_range(NULL, 0, 0, 16, 0, never_called, NULL), EINVAL);

    /* The 0.6 shape: flags before the callback. */
    CHECK_NULL_ERRNO(aura_read(NULL, 0, aura_buf(buf), 16, 0, AURA_NO_FLAGS, never_called, NULL),
                     EINVAL);
    CHECK_NULL_ERRNO(aura_write(NULL, 0, aura_buf(buf), 16, 0, AURA_NO_FLAGS, never_called, NULL),
                     EINVAL);
    CHECK_NULL_ERRNO(aura_readv(NULL, 0, &iov, 1, 0, AURA_NO_FLAGS, never_called, NULL), EINVAL);
    CHECK_NULL_ERRNO(aura_writev(NULL, 0, &iov, 1, 0, AURA_NO_FLAGS, never_called, NULL), EINVAL);
    CHECK_NULL_ERRNO(aura_fsync(NULL, 0, AURA_FSYNC_DEFAULT, AURA_NO_FLAGS, never_called, NULL),
                     EINVAL);
    CHECK_NULL_ERRNO(
        aura_openat(NULL, AT_FDCWD, "x", O_RDONLY, 0, AURA_NO_FLAGS, never_called, NULL), EINVAL);
    CHECK_NULL_ERRNO(aura_close(NULL, 0, AURA_NO_FLAGS, never_called, NULL), EINVAL);
    CHECK_NULL_ERRNO(aura_statx(NULL, AT_FDCWD, "x", 0, AURA_STATX_ALL, &sx, AURA_NO_FLAGS,
                                never_called, NULL),
                     EINVAL);
    CHECK_NULL_ERRNO(aura_fallocate(NULL, 0, 0, 0, 16, AURA_NO_FLAGS, never_called, NULL), EINVAL);
    CHECK_NULL_ERRNO(aura_ftruncate(NULL, 0, 16, AURA_NO_FLAGS, never_called, NULL), EINVAL);
    CHECK_NULL_ERRNO(aura_sync_file_range(NULL, 0, 0, 16, 0, AURA_NO_FLAGS, never_called, NULL),
                     EINVAL);

    /* Parenthesised name and function pointer: the exported 8-argument function. */
    CHECK_NULL_ERRNO((aura_read)(NULL, 0, aura_buf(buf), 16, 0, AURA_NO_FLAGS, never_called, NULL),
                     EINVAL);
    CHECK_NULL_ERRNO(api.read(NULL, 0, aura_buf(buf), 16, 0, 0, never_called, NULL), EINVAL);
    CHECK_NULL_ERRNO(api.statx(NULL, AT_FDCWD, "x", 0, 0, &sx, 0, never_called, NULL), EINVAL);
    CHECK(api.read == &aura_read && api.sync_file_range == &aura_sync_file_range);

    /* Inline helpers. */
    int x = 0;
    aura_buf_t b = helper_buf(&x);
    CHECK(b.type == AURA_BUF_UNREGISTERED && b.u.ptr == (void *)&x);
    b = helper_fixed(3, 100);
    CHECK(b.type == AURA_BUF_REGISTERED && b.u.fixed.index == 3 && b.u.fixed.offset == 100);
    b = helper_fixed(-1, 100);
    CHECK(b.type == AURA_BUF_UNREGISTERED && b.u.ptr == NULL);
    b = helper_fixed_idx(7);
    CHECK(b.type == AURA_BUF_REGISTERED && b.u.fixed.index == 7 && b.u.fixed.offset == 0);
    b = aura_buf(NULL);
    CHECK(b.type == AURA_BUF_UNREGISTERED && b.u.ptr == NULL);

    /* aura_options_init's defaults. */
    aura_options_t o;
    memset(&o, 0xab, sizeof o);
    aura_options_init(&o);
    CHECK_EQ(o.struct_size, sizeof(aura_options_t));
    CHECK_EQ(o.queue_depth, 1024);
    CHECK_EQ(o.min_in_flight, 4);
    CHECK_EQ(o.batch_threshold, -1);
    CHECK_EQ(o.sqpoll_idle_ms, 1000);
    CHECK_EQ(o.buffer_alignment, (size_t)sysconf(_SC_PAGESIZE));
    CHECK(o.ring_select == AURA_SELECT_ADAPTIVE && !o.disable_adaptive && !o.enable_sqpoll &&
          !o.single_thread);
    CHECK(o._reserved[0] == 0 && o._reserved[5] == 0);
    aura_options_init(NULL); /* documented: does nothing */

    return t_finish();
}
