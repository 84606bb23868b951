/*
 * aura.h — the C API of aura, a self-tuning io_uring I/O engine for Linux.
 *
 * Source compatible with the AuraIO 0.6 C API: same header name, types, struct layouts,
 * constants, function names and error conventions. Link with `-laura -lpthread` (or
 * `pkg-config --cflags --libs libaura`).
 *
 * Conventions (apply to every function unless its comment says otherwise)
 * ------------------------------------------------------------------------
 * - Submissions (aura_read … aura_sync_file_range) return an `aura_request_t *`, or NULL with
 *   errno set. Every other function returning int returns 0 (or a count) on success and -1 with
 *   errno set on failure.
 * - A NULL engine is EINVAL everywhere an error can be returned; the void functions that take an
 *   engine do nothing with NULL.
 * - The completion callback gets the bytes moved (data ops), the new fd (openat), 0 (other ops)
 *   or a negative errno (-ECANCELED for a cancelled op). It runs on the thread inside
 *   aura_poll / aura_wait / aura_run / aura_drain (or aura_destroy, which drains), one at a time.
 * - A request handle (`aura_request_t *`) is valid from its submission until its callback
 *   returns; after that the engine reuses it. A NULL callback is allowed (fire and forget).
 * - Memory passed to a submission (buffers, iovec arrays' buffers, paths, statx output) must stay
 *   valid until the callback has run. iovec arrays themselves are copied at submission.
 * - Structs carry `_reserved` fields that must be zero on input. Getters take the caller's
 *   struct size and fill a prefix of that many bytes, so older callers keep working.
 * - Inside a callback you may: submit, cancel, aura_stop, aura_request_unregister (and
 *   aura_unregister, which then turns into the deferred form), the aura_request_* getters, every
 *   aura_get_* function and buffer alloc/free. aura_poll / aura_wait / aura_run / aura_drain
 *   from a callback fail with EDEADLK; aura_destroy from a callback is refused (logged, no-op).
 *
 * Thread safety
 * -------------
 * Thread-safe: submissions, cancel, the request getters, stats, runtime setters, buffer
 * alloc/free (a buffer may be freed by another thread), flush, stop, log emit.
 * One thread at a time per engine (others wait their turn): poll, wait, run, drain.
 * Registration calls are serialised among themselves. With `single_thread` set in the options,
 * the caller promises that one thread does everything.
 *
 * Two call shapes
 * ---------------
 * Every operation that takes `aura_submit_flags_t` is exported with the flags argument before the
 * callback, e.g. `aura_read(e, fd, buf, len, off, flags, cb, ud)`. The same call without flags,
 * `aura_read(e, fd, buf, len, off, cb, ud)`, also compiles: a function-like macro with the
 * function's name counts the arguments and passes AURA_NO_FLAGS. Taking the address
 * (`&aura_read`) or calling `(aura_read)(...)` reaches the exported function directly. Define
 * AURA_NO_ARITY_MACROS before including this header to get the plain prototypes only.
 */
#ifndef AURA_H
#define AURA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h> /* ssize_t, off_t, mode_t */
#include <unistd.h>    /* close(), pread() users expect beside aura_* */
#include <sys/uio.h>   /* struct iovec */

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Version
 * ------------------------------------------------------------------------------------------- */

#define AURA_VERSION_MAJOR 0
#define AURA_VERSION_MINOR 6
#define AURA_VERSION_PATCH 0
/** major * 10000 + minor * 100 + patch. */
#define AURA_VERSION \
    (AURA_VERSION_MAJOR * 10000 + AURA_VERSION_MINOR * 100 + AURA_VERSION_PATCH)
#define AURA_VERSION_STRING "0.6.0"

/* ---------------------------------------------------------------------------------------------
 * Attributes
 * ------------------------------------------------------------------------------------------- */

/* AURA_WARN_UNUSED marks results that must be checked (submissions, create, cancel, poll, wait,
 * drain, get_poll_fd, register, set_linked). Compile with -DAURA_WARN_UNUSED= to silence it. */
#if defined(__GNUC__) || defined(__clang__)
#ifndef AURA_WARN_UNUSED
#define AURA_WARN_UNUSED __attribute__((warn_unused_result))
#endif
#define AURA_API __attribute__((visibility("default")))
#define AURA_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#ifndef AURA_WARN_UNUSED
#define AURA_WARN_UNUSED
#endif
#define AURA_API
#define AURA_PRINTF(fmt, args)
#endif

#ifdef __cplusplus
#define AURA_NOEXCEPT noexcept
#else
#define AURA_NOEXCEPT
#endif

/* ---------------------------------------------------------------------------------------------
 * Types
 * ------------------------------------------------------------------------------------------- */

/** An engine: rings, buffer pool, tuning state. Created by aura_create*, freed by aura_destroy. */
typedef struct aura_engine aura_engine_t;

/** A submitted operation; valid from submission until its callback returns. Never freed by
 *  the caller. */
typedef struct aura_request aura_request_t;

/** Completion callback. `result`: bytes (data ops), new fd (openat), 0 (others), or -errno. */
typedef void (*aura_callback_t)(aura_request_t *req, ssize_t result, void *user_data);

/** Operation kinds (aura_request_op_type). */
typedef enum {
    AURA_OP_READ = 0,
    AURA_OP_WRITE = 1,
    AURA_OP_READV = 2,
    AURA_OP_WRITEV = 3,
    AURA_OP_FSYNC = 4,
    AURA_OP_FDATASYNC = 5,
    AURA_OP_CANCEL = 6,
    AURA_OP_READ_FIXED = 7,
    AURA_OP_WRITE_FIXED = 8,
    AURA_OP_OPENAT = 9,
    AURA_OP_CLOSE = 10,
    AURA_OP_STATX = 11,
    AURA_OP_FALLOCATE = 12,
    AURA_OP_FTRUNCATE = 13,
    AURA_OP_SYNC_FILE_RANGE = 14,
    /* 15-16 reserved */
    AURA_OP__COUNT = 17
} aura_op_type_t;

/** Submission flags. Any other bit is EINVAL; openat / close / statx take AURA_NO_FLAGS only. */
typedef unsigned int aura_submit_flags_t;
/** No flags. */
#define AURA_NO_FLAGS ((aura_submit_flags_t)0)
/** `fd` is an index into the table given to aura_register_files. */
#define AURA_FIXED_FILE ((aura_submit_flags_t)1)

/** Kind of buffer an aura_buf_t describes. */
typedef enum {
    AURA_BUF_UNREGISTERED = 0, /**< a plain pointer */
    AURA_BUF_REGISTERED = 1    /**< a registered buffer index + offset */
} aura_buf_type_t;

/** A buffer for aura_read / aura_write: build it with aura_buf / aura_buf_fixed. 24 bytes. */
typedef struct {
    aura_buf_type_t type; /**< which member of `u` is meaningful */
    union {
        void *ptr; /**< AURA_BUF_UNREGISTERED: the memory */
        struct {
            int index;     /**< index into the aura_register_buffers table */
            size_t offset; /**< byte offset in that buffer */
        } fixed;           /**< AURA_BUF_REGISTERED */
    } u;
} aura_buf_t;

/** How a submission picks its ring. */
typedef enum {
    /** CPU-local ring, spilling to a less loaded ring when the local one is an outlier. */
    AURA_SELECT_ADAPTIVE = 0,
    /** Always the ring of the submitting thread's CPU. */
    AURA_SELECT_CPU_LOCAL = 1,
    /** Rings in turn. */
    AURA_SELECT_ROUND_ROBIN = 2,
    /** Each thread keeps the ring it claimed at its first submission. */
    AURA_SELECT_THREAD_LOCAL = 3
} aura_ring_select_t;

/** What aura_unregister / aura_request_unregister release. */
typedef enum {
    AURA_REG_BUFFERS = 0,
    AURA_REG_FILES = 1
} aura_reg_type_t;

/** Engine options: fill with aura_options_init, then change fields. 88 bytes on x86-64. */
typedef struct {
    size_t struct_size;        /**< set by aura_options_init; 0 or above sizeof is EINVAL */
    int queue_depth;           /**< SQ entries per ring: 0 = 1024, else 4..32768 */
    int ring_count;            /**< 0 = one per CPU; at most 1024 */
    int initial_in_flight;     /**< 0 = max(4, queue_depth/4); else min_in_flight..queue_depth */
    int min_in_flight;         /**< 0 = 4; else 1..queue_depth */
    double max_p99_latency_ms; /**< 0 = derived by the controller; finite, >= 0 */
    size_t buffer_alignment;   /**< pool buffer alignment: 0 = page size; power of 2 >= 8 */
    bool disable_adaptive;     /**< fixed in-flight limit (initial_in_flight or queue_depth) */
    bool enable_sqpoll;        /**< kernel SQ polling thread (needs privileges) */
    int sqpoll_idle_ms;        /**< SQPOLL idle time (1000) */
    aura_ring_select_t ring_select;
    bool single_thread;        /**< the caller promises one thread submits and waits */
    int batch_threshold;       /**< -1 tuned, 0 never flush on count, > 0 fixed */
    uint32_t _reserved[6];     /**< must be zero */
} aura_options_t;

/** Engine-wide statistics (sums over the rings). 72 bytes. */
typedef struct {
    int64_t ops_completed;
    int64_t bytes_transferred;
    double current_throughput_bps;
    double p99_latency_ms;   /**< highest ring P99 of the last ticks (0 = none measured) */
    int current_in_flight;   /**< submitted and not completed */
    int optimal_in_flight;   /**< sum of the rings' in-flight limits */
    int peak_in_flight;      /**< sum of the rings' peaks */
    int optimal_batch_size;  /**< mean batch threshold */
    uint64_t adaptive_spills;
    uint32_t _reserved[4];
} aura_stats_t;

/** Controller phases (aura_ring_stats_t.aimd_phase, aura_phase_name). */
#define AURA_PHASE_BASELINE 0
#define AURA_PHASE_PROBING 1
#define AURA_PHASE_STEADY 2
#define AURA_PHASE_BACKOFF 3
#define AURA_PHASE_SETTLING 4
#define AURA_PHASE_CONVERGED 5
#define AURA_PHASE_PASSTHROUGH 6

/** One ring's statistics. 72 bytes. */
typedef struct {
    int64_t ops_completed;
    int64_t bytes_transferred;
    int pending_count;
    int peak_in_flight;
    int in_flight_limit;
    int batch_threshold;
    double p99_latency_ms;   /**< last tick's P99; -1 when no data */
    double throughput_bps;
    int aimd_phase;          /**< AURA_PHASE_* */
    int queue_depth;
    uint32_t _reserved[4];
} aura_ring_stats_t;

#define AURA_HISTOGRAM_BUCKETS 320
#define AURA_HISTOGRAM_TIER_COUNT 4
#define AURA_HISTOGRAM_MAX_US 100000

/** A ring's latency histogram: 4 tiers, [0,1 ms) by 10 us, [1,5 ms) by 50 us, [5,20 ms) by
 *  250 us, [20,100 ms) by 1 ms; >= 100 ms counts in `overflow`. 1352 bytes. */
typedef struct {
    uint32_t buckets[AURA_HISTOGRAM_BUCKETS];
    uint32_t overflow;
    uint32_t total_count;
    int max_tracked_us;                              /**< 100000 */
    int tier_count;                                  /**< 4 */
    int tier_start_us[AURA_HISTOGRAM_TIER_COUNT];    /**< 0, 1000, 5000, 20000 */
    int tier_width_us[AURA_HISTOGRAM_TIER_COUNT];    /**< 10, 50, 250, 1000 */
    int tier_base_bucket[AURA_HISTOGRAM_TIER_COUNT]; /**< 0, 100, 180, 240 */
    uint32_t _reserved[2];
} aura_histogram_t;

/** Buffer pool statistics. 40 bytes. */
typedef struct {
    size_t total_allocated_bytes;
    size_t total_buffers;
    int shard_count;
    uint32_t _reserved[4];
} aura_buffer_stats_t;

/** Log levels (syslog numbers). */
#define AURA_LOG_ERR 3
#define AURA_LOG_WARN 4
#define AURA_LOG_NOTICE 5
#define AURA_LOG_INFO 6
#define AURA_LOG_DEBUG 7

/** Log handler: `msg` is NUL-terminated, at most 255 characters, valid during the call. */
typedef void (*aura_log_fn)(int level, const char *msg, void *userdata);

/* Constants: the Linux values. */
#define AURA_FSYNC_DEFAULT 0
#define AURA_FSYNC_DATASYNC 1

#define AURA_FALLOC_DEFAULT 0x00
#define AURA_FALLOC_KEEP_SIZE 0x01
#define AURA_FALLOC_PUNCH_HOLE 0x02
#define AURA_FALLOC_COLLAPSE_RANGE 0x08
#define AURA_FALLOC_ZERO_RANGE 0x10
#define AURA_FALLOC_INSERT_RANGE 0x20

#define AURA_SYNC_RANGE_WAIT_BEFORE 1
#define AURA_SYNC_RANGE_WRITE 2
#define AURA_SYNC_RANGE_WAIT_AFTER 4

#define AURA_AT_SYMLINK_NOFOLLOW 0x100
#define AURA_AT_EMPTY_PATH 0x1000

#define AURA_STATX_TYPE 0x00000001U
#define AURA_STATX_MODE 0x00000002U
#define AURA_STATX_NLINK 0x00000004U
#define AURA_STATX_UID 0x00000008U
#define AURA_STATX_GID 0x00000010U
#define AURA_STATX_ATIME 0x00000020U
#define AURA_STATX_MTIME 0x00000040U
#define AURA_STATX_CTIME 0x00000080U
#define AURA_STATX_INO 0x00000100U
#define AURA_STATX_SIZE 0x00000200U
#define AURA_STATX_BLOCKS 0x00000400U
#define AURA_STATX_BASIC_STATS 0x000007ffU
#define AURA_STATX_BTIME 0x00000800U
#define AURA_STATX_ALL 0x00000fffU

#define AURA_O_RDONLY 00
#define AURA_O_WRONLY 01
#define AURA_O_RDWR 02
#define AURA_O_CREAT 0100
#define AURA_O_EXCL 0200
#define AURA_O_NOCTTY 0400
#define AURA_O_TRUNC 01000
#define AURA_O_APPEND 02000
#define AURA_O_NONBLOCK 04000
#define AURA_O_DSYNC 010000
#define AURA_O_DIRECT 040000
#define AURA_O_LARGEFILE 0100000
#define AURA_O_DIRECTORY 0200000
#define AURA_O_NOFOLLOW 0400000
#define AURA_O_NOATIME 01000000
#define AURA_O_CLOEXEC 02000000
#define AURA_O_SYNC 04010000

struct statx; /* <linux/stat.h> / <sys/stat.h> with _GNU_SOURCE */

/* ---------------------------------------------------------------------------------------------
 * Buffer descriptors (inline helpers)
 * ------------------------------------------------------------------------------------------- */

/** A plain buffer at `ptr` (NULL makes the submission fail with EINVAL). */
static inline aura_buf_t aura_buf(const void *ptr) AURA_NOEXCEPT {
    aura_buf_t b;
    b.type = AURA_BUF_UNREGISTERED;
    b.u.fixed.offset = 0;
    b.u.ptr = (void *)(uintptr_t)ptr;
    return b;
}

/** `offset` bytes into registered buffer `index`. A negative index yields a descriptor that
 *  makes the submission fail with EINVAL. */
static inline aura_buf_t aura_buf_fixed(int index, size_t offset) AURA_NOEXCEPT {
    aura_buf_t b;
    if (index < 0) {
        b.type = AURA_BUF_UNREGISTERED;
        b.u.fixed.offset = 0;
        b.u.ptr = NULL;
        return b;
    }
    b.type = AURA_BUF_REGISTERED;
    b.u.fixed.index = index;
    b.u.fixed.offset = offset;
    return b;
}

/** The start of registered buffer `index`. */
static inline aura_buf_t aura_buf_fixed_idx(int index) AURA_NOEXCEPT {
    return aura_buf_fixed(index, 0);
}

/* ---------------------------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------------------------- */

/** Fills `options` with the defaults (struct_size = sizeof, queue depth 1024, min in flight 4,
 *  batch threshold -1, sqpoll idle 1000 ms, page-size alignment). NULL: does nothing. */
AURA_API void aura_options_init(aura_options_t *options);

/** An engine with default options. NULL + errno on failure (ENOMEM, or the ring setup errno,
 *  e.g. ENOSYS / EPERM where io_uring is unavailable). Free with aura_destroy. */
AURA_API AURA_WARN_UNUSED aura_engine_t *aura_create(void);

/** An engine with `options` (NULL = defaults). EINVAL for a bad option: struct_size 0 or larger
 *  than this library's aura_options_t, non-zero `_reserved`, or any field out of the range its
 *  comment gives. Free with aura_destroy. */
AURA_API AURA_WARN_UNUSED aura_engine_t *aura_create_with_options(const aura_options_t *options);

/** Stops new submissions (ESHUTDOWN), waits for every operation in flight (their callbacks run
 *  here), unregisters buffers and files, frees the rings and the buffer pool (including buffers
 *  still allocated with aura_buffer_alloc). Nothing the kernel may still write is freed first.
 *  NULL: does nothing. Calling it from a callback is refused (logged). Other threads must have
 *  stopped using the engine. */
AURA_API void aura_destroy(aura_engine_t *engine);

/* ---------------------------------------------------------------------------------------------
 * Data I/O — thread-safe; buffers must outlive the callback
 * ------------------------------------------------------------------------------------------- */

/** pread(fd, buf, len, offset), or READ_FIXED when `buf` is a registered buffer.
 *  NULL + errno: EINVAL (NULL engine, fd < 0, len 0 or > UINT_MAX, NULL buffer, negative
 *  offset, unknown flags), ENOENT (registered buffer index not registered), EOVERFLOW (offset +
 *  len beyond the registered buffer), EBUSY (registered buffers being unregistered), EAGAIN (no
 *  request slot: poll and retry), ESHUTDOWN (engine being destroyed), or the latched fatal
 *  errno (aura_get_fatal_error). */
AURA_API AURA_WARN_UNUSED aura_request_t *aura_read(aura_engine_t *engine, int fd, aura_buf_t buf,
                                                    size_t len, off_t offset,
                                                    aura_submit_flags_t flags,
                                                    aura_callback_t callback, void *user_data);

/** pwrite(fd, buf, len, offset), or WRITE_FIXED. Errors as aura_read. */
AURA_API AURA_WARN_UNUSED aura_request_t *aura_write(aura_engine_t *engine, int fd, aura_buf_t buf,
                                                     size_t len, off_t offset,
                                                     aura_submit_flags_t flags,
                                                     aura_callback_t callback, void *user_data);

/** preadv(fd, iov, iovcnt, offset). The iovec array is copied; the buffers it points at must
 *  outlive the callback. EINVAL also for NULL iov or iovcnt outside 1..IOV_MAX (1024). */
AURA_API AURA_WARN_UNUSED aura_request_t *aura_readv(aura_engine_t *engine, int fd,
                                                     const struct iovec *iov, int iovcnt,
                                                     off_t offset, aura_submit_flags_t flags,
                                                     aura_callback_t callback, void *user_data);

/** pwritev(fd, iov, iovcnt, offset). Errors as aura_readv. */
AURA_API AURA_WARN_UNUSED aura_request_t *aura_writev(aura_engine_t *engine, int fd,
                                                      const struct iovec *iov, int iovcnt,
                                                      off_t offset, aura_submit_flags_t flags,
                                                      aura_callback_t callback, void *user_data);

/** fsync(fd), or fdatasync(fd) with AURA_FSYNC_DATASYNC. EINVAL for other fsync_flags. */
AURA_API AURA_WARN_UNUSED aura_request_t *aura_fsync(aura_engine_t *engine, int fd,
                                                     unsigned int fsync_flags,
                                                     aura_submit_flags_t flags,
                                                     aura_callback_t callback, void *user_data);

/* ---------------------------------------------------------------------------------------------
 * Metadata operations (never latency-sampled)
 * ------------------------------------------------------------------------------------------- */

/** openat(dirfd, path, open_flags, mode); the callback's result is the new fd. `path` must stay
 *  valid until the callback. EINVAL: NULL path, flags != 0. */
AURA_API AURA_WARN_UNUSED aura_request_t *aura_openat(aura_engine_t *engine, int dirfd,
                                                      const char *path, int open_flags,
                                                      mode_t mode, aura_submit_flags_t flags,
                                                      aura_callback_t callback, void *user_data);

/** close(fd), never through the registered-file table. EINVAL: fd < 0, flags != 0. */
AURA_API AURA_WARN_UNUSED aura_request_t *aura_close(aura_engine_t *engine, int fd,
                                                     aura_submit_flags_t flags,
                                                     aura_callback_t callback, void *user_data);

/** statx(dirfd, path, at_flags, mask, out). `path` and `out` must stay valid until the callback.
 *  EINVAL: NULL path or out, flags != 0. */
AURA_API AURA_WARN_UNUSED aura_request_t *aura_statx(aura_engine_t *engine, int dirfd,
                                                     const char *path, int at_flags,
                                                     unsigned int mask, struct statx *out,
                                                     aura_submit_flags_t flags,
                                                     aura_callback_t callback, void *user_data);

/** fallocate(fd, mode, offset, len). EINVAL: offset < 0, len <= 0. */
AURA_API AURA_WARN_UNUSED aura_request_t *aura_fallocate(aura_engine_t *engine, int fd, int mode,
                                                         off_t offset, off_t len,
                                                         aura_submit_flags_t flags,
                                                         aura_callback_t callback,
                                                         void *user_data);

/** ftruncate(fd, length) (kernel 6.9+; older kernels complete with -EINVAL). EINVAL:
 *  length < 0. */
AURA_API AURA_WARN_UNUSED aura_request_t *aura_ftruncate(aura_engine_t *engine, int fd,
                                                         off_t length, aura_submit_flags_t flags,
                                                         aura_callback_t callback,
                                                         void *user_data);

/** sync_file_range(fd, offset, nbytes, range_flags); nbytes 0 = to the end of the file.
 *  EINVAL: offset < 0, nbytes < 0 or > UINT_MAX, unknown range_flags. */
AURA_API AURA_WARN_UNUSED aura_request_t *aura_sync_file_range(aura_engine_t *engine, int fd,
                                                               off_t offset, off_t nbytes,
                                                               unsigned int range_flags,
                                                               aura_submit_flags_t flags,
                                                               aura_callback_t callback,
                                                               void *user_data);

/* ---------------------------------------------------------------------------------------------
 * Cancel and request introspection
 * ------------------------------------------------------------------------------------------- */

/** Asks the kernel to cancel `req`: its callback then gets -ECANCELED (or its normal result if
 *  it finished first). 0 = cancel submitted. -1 + errno: EINVAL (NULL engine or request, or a
 *  request of another engine), EALREADY (the request already completed or its callback is
 *  running), EAGAIN (no room for the cancel: poll and retry), ESHUTDOWN. The cancel itself has no
 *  callback and is not counted. Thread-safe; allowed in callbacks. */
AURA_API AURA_WARN_UNUSED int aura_cancel(aura_engine_t *engine, aura_request_t *req);

/** Whether `req` is still in flight (false once its completion is being delivered). NULL:
 *  false. */
AURA_API bool aura_request_pending(const aura_request_t *req);

/** The fd given at submission (also when a registered-file index was used). NULL: -1, EINVAL. */
AURA_API int aura_request_fd(const aura_request_t *req);

/** The user_data given at submission. NULL: NULL. */
AURA_API void *aura_request_user_data(const aura_request_t *req);

/** The operation kind. NULL: (aura_op_type_t)-1. */
AURA_API aura_op_type_t aura_request_op_type(const aura_request_t *req);

/** Whether aura_request_set_linked was applied to `req`. NULL: false. */
AURA_API bool aura_request_is_linked(const aura_request_t *req);

/** Links the next submission of this thread on this engine after `req`: it starts only once
 *  `req` succeeded, and completes with -ECANCELED if `req` fails (an error, or a read/write
 *  that moved fewer bytes than asked: IOSQE_IO_LINK's rules). Chains of any length are built by
 *  calling it again on each new request; the first submission not linked further ends the
 *  chain. The successor's handle is returned at once and is pending while it waits; cancelling
 *  it completes it with -ECANCELED without submitting it (and cancels the rest of its chain).
 *  aura orders the links in user space (the successor is submitted when the head's completion
 *  is reaped, before the head's callback runs), so each step costs one completion round trip.
 *  Calling it twice on the same head is harmless. Returns 0, or -1 with errno EINVAL: NULL
 *  `req`, an engine not using AURA_SELECT_THREAD_LOCAL (as in the original), a request that
 *  already completed or already has a successor. */
AURA_API AURA_WARN_UNUSED int aura_request_set_linked(aura_request_t *req);

/* ---------------------------------------------------------------------------------------------
 * Event processing (poll / wait / run / drain: one thread at a time per engine)
 * ------------------------------------------------------------------------------------------- */

/** An eventfd (non-blocking, close-on-exec) that becomes readable when completions are ready;
 *  for epoll. Call aura_flush after submitting and before sleeping on it. Owned by the engine:
 *  do not close it. NULL: -1, EINVAL. */
AURA_API AURA_WARN_UNUSED int aura_get_poll_fd(const aura_engine_t *engine);

/** Processes ready completions without blocking; returns how many callbacks ran. -1 + errno:
 *  EINVAL (NULL), EDEADLK (called from a callback), or the latched fatal errno. */
AURA_API AURA_WARN_UNUSED int aura_poll(aura_engine_t *engine);

/** Processes completions, blocking up to timeout_ms (-1 = forever) until at least one callback
 *  ran. Returns that count, 0 when nothing is pending at all. -1 + errno: ETIMEDOUT, EINVAL,
 *  EDEADLK (from a callback). */
AURA_API AURA_WARN_UNUSED int aura_wait(aura_engine_t *engine, int timeout_ms);

/** Submits queued operations on every ring now. 0, or -1 + errno. */
AURA_API int aura_flush(aura_engine_t *engine);

/** Processes completions until aura_stop, then drains what is pending (up to 10 s). NULL or
 *  from a callback: returns at once (logged). */
AURA_API void aura_run(aura_engine_t *engine);

/** Makes aura_run return. Any thread, callbacks included. NULL: does nothing. */
AURA_API void aura_stop(aura_engine_t *engine);

/** Processes completions until nothing is pending or timeout_ms passed (-1 = forever, 0 = one
 *  poll). Returns the callbacks run. -1 + errno: ETIMEDOUT, EINVAL, EDEADLK. */
AURA_API AURA_WARN_UNUSED int aura_drain(aura_engine_t *engine, int timeout_ms);

/* ---------------------------------------------------------------------------------------------
 * Buffers and registration
 * ------------------------------------------------------------------------------------------- */

/** An aligned buffer of at least `size` bytes from the engine's pool. NULL + errno: EINVAL (NULL
 *  engine, size 0 or > 128 MiB), ENOMEM. Free with aura_buffer_free (any thread); aura_destroy
 *  frees what is left. */
AURA_API void *aura_buffer_alloc(aura_engine_t *engine, size_t size);

/** Returns a buffer from aura_buffer_alloc to the pool. NULL engine or buf: does nothing. A
 *  pointer this engine did not hand out is left alone (never passed to free()) and logged at
 *  AURA_LOG_WARN. Must not be freed while an operation uses it. */
AURA_API void aura_buffer_free(aura_engine_t *engine, void *buf);

/** Registers `count` buffers on every ring, for aura_buf_fixed. The memory must stay valid until
 *  unregistered. -1 + errno: EINVAL (NULL, count 0 or > 65535, NULL iov_base or zero length),
 *  EBUSY (already registered, or an unregister is in progress), ENOMEM (RLIMIT_MEMLOCK). */
AURA_API AURA_WARN_UNUSED int aura_register_buffers(aura_engine_t *engine,
                                                    const struct iovec *iovs, unsigned int count);

/** Registers `count` fds on every ring; later submissions on these fds use the table
 *  automatically, and AURA_FIXED_FILE names an index directly. -1 + errno: EINVAL, EBUSY. */
AURA_API AURA_WARN_UNUSED int aura_register_files(aura_engine_t *engine, const int *fds,
                                                  unsigned int count);

/** Replaces registered file `index` with `fd` (-1 clears it). -1 + errno: EINVAL (NULL, bad
 *  index, fd < -1), ENOENT (no files registered), EBUSY (unregister in progress). */
AURA_API AURA_WARN_UNUSED int aura_update_file(aura_engine_t *engine, int index, int fd);

/** Unregisters buffers or files, waiting (up to 10 s, else ETIMEDOUT) for operations using them.
 *  From a callback it becomes aura_request_unregister. -1 + errno: EINVAL (NULL, bad type),
 *  ENOENT (nothing registered), ETIMEDOUT. */
AURA_API AURA_WARN_UNUSED int aura_unregister(aura_engine_t *engine, aura_reg_type_t type);

/** Marks buffers or files for unregistering: done now if nothing uses them, else by a later
 *  aura_poll / aura_wait / aura_drain. Meanwhile registered-buffer submissions fail with EBUSY
 *  and fds are no longer matched against the file table. Safe from callbacks. -1 + errno: EINVAL,
 *  ENOENT. */
AURA_API int aura_request_unregister(aura_engine_t *engine, aura_reg_type_t type);

/* ---------------------------------------------------------------------------------------------
 * Statistics and diagnostics (thread-safe)
 * ------------------------------------------------------------------------------------------- */

/** Operations submitted and not completed. NULL: -1. */
AURA_API int aura_pending_count(const aura_engine_t *engine);

/** Fills the first `size` bytes of `stats` (at most sizeof(aura_stats_t)). -1 + EINVAL: NULL
 *  engine or stats, size 0. */
AURA_API int aura_get_stats(const aura_engine_t *engine, aura_stats_t *stats, size_t size);

/** Number of rings. NULL: -1 (EINVAL). */
AURA_API int aura_get_ring_count(const aura_engine_t *engine);

/** Fills `stats` for ring `ring_idx`. -1 + EINVAL: NULL, size 0, bad index (then the struct
 *  prefix is zeroed). */
AURA_API int aura_get_ring_stats(const aura_engine_t *engine, int ring_idx,
                                 aura_ring_stats_t *stats, size_t size);

/** Copies ring `ring_idx`'s latency histogram. -1 + EINVAL: NULL, size 0, bad index (zeroed). */
AURA_API int aura_get_histogram(const aura_engine_t *engine, int ring_idx,
                                aura_histogram_t *hist, size_t size);

/** Fills the buffer pool statistics. -1 + EINVAL: NULL, size 0. */
AURA_API int aura_get_buffer_stats(const aura_engine_t *engine, aura_buffer_stats_t *stats,
                                   size_t size);

/** "BASELINE", "PROBING", "STEADY", "BACKOFF", "SETTLING", "CONVERGED", "PASSTHROUGH"; anything
 *  else "UNKNOWN". Static strings. */
AURA_API const char *aura_phase_name(int phase);

/** The latency (ms) at percentile `percentile` (0..100) of `hist`: the midpoint of its bucket
 *  (100 ms for the overflow). -1 for NULL, an empty histogram or a percentile out of range. */
AURA_API double aura_histogram_percentile(const aura_histogram_t *hist, double percentile);

/** Upper bound (us) of bucket `bucket`; 0 for NULL or an index out of range. */
AURA_API int aura_histogram_bucket_upper_bound_us(const aura_histogram_t *hist, int bucket);

/** Writes Prometheus text exposition (format 0.0.4) of the engine's metrics into `buf`
 *  (NUL-terminated). Returns the bytes written (without the NUL). Buffer too small (or NULL
 *  with size 0): returns minus the size needed and sets ENOBUFS. -1 + EINVAL: NULL engine, NULL
 *  buf with size > 0. Suggested size: 16 KiB + 12 KiB per ring. */
AURA_API int aura_metrics_prometheus(aura_engine_t *engine, char *buf, size_t size);

/* ---------------------------------------------------------------------------------------------
 * Runtime configuration (all rings, from the next controller tick)
 * ------------------------------------------------------------------------------------------- */

/** P99 latency target in ms (0 = derived). -1 + EINVAL: NULL, negative or not finite. */
AURA_API int aura_set_max_p99_latency(aura_engine_t *engine, double max_p99_ms);

/** Smallest in-flight limit tuning may choose. -1 + EINVAL: NULL, outside 1..queue_depth. */
AURA_API int aura_set_min_in_flight(aura_engine_t *engine, int min_in_flight);

/** Batch threshold: -1 tuned, 0 never flush on count, > 0 fixed (<= 65536). -1 + EINVAL. */
AURA_API int aura_set_batch_threshold(aura_engine_t *engine, int threshold);

/** 0, or the errno of an unrecoverable ring failure latched by the engine (then every
 *  submission fails with it). NULL: -1. */
AURA_API int aura_get_fatal_error(const aura_engine_t *engine);

/** Whether the calling thread is inside an aura completion callback. */
AURA_API bool aura_in_callback_context(void);

/* ---------------------------------------------------------------------------------------------
 * Logging and version
 * ------------------------------------------------------------------------------------------- */

/** Installs a process-wide log handler (NULL = silent, the default). It may be called from any
 *  thread; `userdata` is passed back unchanged. Thread-safe. */
AURA_API void aura_set_log_handler(aura_log_fn handler, void *userdata);

/** Formats a message (printf rules, truncated to 255 characters) and passes it to the log
 *  handler, if any. NULL fmt: does nothing. Thread-safe. */
AURA_API void aura_log_emit(int level, const char *fmt, ...) AURA_PRINTF(2, 3);

/** "0.6.0". */
AURA_API const char *aura_version(void);

/** AURA_VERSION of the library (600). */
AURA_API int aura_version_int(void);

/* ---------------------------------------------------------------------------------------------
 * The flag-less call shape: aura_read(e, fd, buf, len, off, cb, ud) and friends.
 * ------------------------------------------------------------------------------------------- */

/** @cond internal */
static inline aura_request_t *aura__read_noflags(aura_engine_t *e, int fd, aura_buf_t buf,
                                                 size_t len, off_t off, aura_callback_t cb,
                                                 void *ud) AURA_NOEXCEPT {
    return aura_read(e, fd, buf, len, off, AURA_NO_FLAGS, cb, ud);
}
static inline aura_request_t *aura__write_noflags(aura_engine_t *e, int fd, aura_buf_t buf,
                                                  size_t len, off_t off, aura_callback_t cb,
                                                  void *ud) AURA_NOEXCEPT {
    return aura_write(e, fd, buf, len, off, AURA_NO_FLAGS, cb, ud);
}
static inline aura_request_t *aura__readv_noflags(aura_engine_t *e, int fd,
                                                  const struct iovec *iov, int iovcnt, off_t off,
                                                  aura_callback_t cb, void *ud) AURA_NOEXCEPT {
    return aura_readv(e, fd, iov, iovcnt, off, AURA_NO_FLAGS, cb, ud);
}
static inline aura_request_t *aura__writev_noflags(aura_engine_t *e, int fd,
                                                   const struct iovec *iov, int iovcnt, off_t off,
                                                   aura_callback_t cb, void *ud) AURA_NOEXCEPT {
    return aura_writev(e, fd, iov, iovcnt, off, AURA_NO_FLAGS, cb, ud);
}
static inline aura_request_t *aura__fsync_noflags(aura_engine_t *e, int fd, unsigned int fsync_flags,
                                                  aura_callback_t cb, void *ud) AURA_NOEXCEPT {
    return aura_fsync(e, fd, fsync_flags, AURA_NO_FLAGS, cb, ud);
}
static inline aura_request_t *aura__openat_noflags(aura_engine_t *e, int dirfd, const char *path,
                                                   int open_flags, mode_t mode,
                                                   aura_callback_t cb, void *ud) AURA_NOEXCEPT {
    return aura_openat(e, dirfd, path, open_flags, mode, AURA_NO_FLAGS, cb, ud);
}
static inline aura_request_t *aura__close_noflags(aura_engine_t *e, int fd, aura_callback_t cb,
                                                  void *ud) AURA_NOEXCEPT {
    return aura_close(e, fd, AURA_NO_FLAGS, cb, ud);
}
static inline aura_request_t *aura__statx_noflags(aura_engine_t *e, int dirfd, const char *path,
                                                  int at_flags, unsigned int mask,
                                                  struct statx *out, aura_callback_t cb,
                                                  void *ud) AURA_NOEXCEPT {
    return aura_statx(e, dirfd, path, at_flags, mask, out, AURA_NO_FLAGS, cb, ud);
}
static inline aura_request_t *aura__fallocate_noflags(aura_engine_t *e, int fd, int mode,
                                                      off_t off, off_t len, aura_callback_t cb,
                                                      void *ud) AURA_NOEXCEPT {
    return aura_fallocate(e, fd, mode, off, len, AURA_NO_FLAGS, cb, ud);
}
static inline aura_request_t *aura__ftruncate_noflags(aura_engine_t *e, int fd, off_t len,
                                                      aura_callback_t cb, void *ud) AURA_NOEXCEPT {
    return aura_ftruncate(e, fd, len, AURA_NO_FLAGS, cb, ud);
}
static inline aura_request_t *aura__sync_file_range_noflags(aura_engine_t *e, int fd, off_t off,
                                                            off_t nbytes, unsigned int range_flags,
                                                            aura_callback_t cb,
                                                            void *ud) AURA_NOEXCEPT {
    return aura_sync_file_range(e, fd, off, nbytes, range_flags, AURA_NO_FLAGS, cb, ud);
}

#ifndef AURA_NO_ARITY_MACROS
/* Counts 1..10 arguments; the trailing list keeps the variadic part non-empty (ISO C). */
#define AURA__NARGS(...) AURA__NARGS_(__VA_ARGS__, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define AURA__NARGS_(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, n, ...) n
#define AURA__CAT(a, b) AURA__CAT_(a, b)
#define AURA__CAT_(a, b) a##b
/* AURA__<OP>_<argument count>: the exported function for the full count, the flag-less helper
 * for one less; any other count names an undefined identifier (a compile error). Inside the
 * expansion of the macro `aura_read`, the name `aura_read` is not expanded again, so it names the
 * function. */
#define AURA__READ_8 aura_read
#define AURA__READ_7 aura__read_noflags
#define AURA__WRITE_8 aura_write
#define AURA__WRITE_7 aura__write_noflags
#define AURA__READV_8 aura_readv
#define AURA__READV_7 aura__readv_noflags
#define AURA__WRITEV_8 aura_writev
#define AURA__WRITEV_7 aura__writev_noflags
#define AURA__FSYNC_6 aura_fsync
#define AURA__FSYNC_5 aura__fsync_noflags
#define AURA__OPENAT_8 aura_openat
#define AURA__OPENAT_7 aura__openat_noflags
#define AURA__CLOSE_5 aura_close
#define AURA__CLOSE_4 aura__close_noflags
#define AURA__STATX_9 aura_statx
#define AURA__STATX_8 aura__statx_noflags
#define AURA__FALLOCATE_8 aura_fallocate
#define AURA__FALLOCATE_7 aura__fallocate_noflags
#define AURA__FTRUNCATE_6 aura_ftruncate
#define AURA__FTRUNCATE_5 aura__ftruncate_noflags
#define AURA__SYNC_FILE_RANGE_8 aura_sync_file_range
#define AURA__SYNC_FILE_RANGE_7 aura__sync_file_range_noflags

#define aura_read(...) AURA__CAT(AURA__READ_, AURA__NARGS(__VA_ARGS__))(__VA_ARGS__)
#define aura_write(...) AURA__CAT(AURA__WRITE_, AURA__NARGS(__VA_ARGS__))(__VA_ARGS__)
#define aura_readv(...) AURA__CAT(AURA__READV_, AURA__NARGS(__VA_ARGS__))(__VA_ARGS__)
#define aura_writev(...) AURA__CAT(AURA__WRITEV_, AURA__NARGS(__VA_ARGS__))(__VA_ARGS__)
#define aura_fsync(...) AURA__CAT(AURA__FSYNC_, AURA__NARGS(__VA_ARGS__))(__VA_ARGS__)
#define aura_openat(...) AURA__CAT(AURA__OPENAT_, AURA__NARGS(__VA_ARGS__))(__VA_ARGS__)
#define aura_close(...) AURA__CAT(AURA__CLOSE_, AURA__NARGS(__VA_ARGS__))(__VA_ARGS__)
#define aura_statx(...) AURA__CAT(AURA__STATX_, AURA__NARGS(__VA_ARGS__))(__VA_ARGS__)
#define aura_fallocate(...) AURA__CAT(AURA__FALLOCATE_, AURA__NARGS(__VA_ARGS__))(__VA_ARGS__)
#define aura_ftruncate(...) AURA__CAT(AURA__FTRUNCATE_, AURA__NARGS(__VA_ARGS__))(__VA_ARGS__)
#define aura_sync_file_range(...) \
    AURA__CAT(AURA__SYNC_FILE_RANGE_, AURA__NARGS(__VA_ARGS__))(__VA_ARGS__)
#endif /* AURA_NO_ARITY_MACROS */
/** @endcond */

/* Layout checks (x86-64 / LP64 ABI sizes). */
#if defined(__x86_64__) || defined(__aarch64__)
#ifdef __cplusplus
#define AURA__STATIC_ASSERT(c, m) static_assert(c, m)
#else
#define AURA__STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif
AURA__STATIC_ASSERT(sizeof(aura_buf_t) == 24, "aura_buf_t ABI");
AURA__STATIC_ASSERT(sizeof(aura_options_t) == 88, "aura_options_t ABI");
AURA__STATIC_ASSERT(sizeof(aura_stats_t) == 72, "aura_stats_t ABI");
AURA__STATIC_ASSERT(sizeof(aura_ring_stats_t) == 72, "aura_ring_stats_t ABI");
AURA__STATIC_ASSERT(sizeof(aura_histogram_t) == 1352, "aura_histogram_t ABI");
AURA__STATIC_ASSERT(sizeof(aura_buffer_stats_t) == 40, "aura_buffer_stats_t ABI");
#endif

#ifdef __cplusplus
}
#endif

#endif /* AURA_H */
