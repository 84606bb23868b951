/* Shared helpers of the C API test programs (the .c files beside this header).
 *
 * Every program compiles as C11 and as C++17 with -Wall -Wextra -Werror. Each check that fails
 * prints file:line, the expression, and the errno; main ends with t_finish(), which prints
 * "<name>: N checks passed" (or the failure count) and returns the exit status: 0 passed,
 * 1 failed, 77 skipped (io_uring not available here).
 */
#ifndef AURA_TEST_COMMON_H
#define AURA_TEST_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <aura.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static int t_checks;
static int t_failures;
static const char *t_name = "test";

#define T_FAIL_AT(file, line, what)                                                          \
    do {                                                                                     \
        int e_ = errno;                                                                      \
        fprintf(stderr, "%s:%d: FAILED: %s (errno %d: %s)\n", file, line, what, e_,          \
                strerror(e_));                                                               \
        t_failures++;                                                                        \
    } while (0)

/** A condition that must hold. */
#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (cond) t_checks++;                                                                \
        else T_FAIL_AT(__FILE__, __LINE__, #cond);                                           \
    } while (0)

/** Two integers that must be equal (both printed on failure). */
#define CHECK_EQ(a, b)                                                                       \
    do {                                                                                     \
        long long a_ = (long long)(a), b_ = (long long)(b);                                  \
        if (a_ == b_) t_checks++;                                                            \
        else {                                                                               \
            fprintf(stderr, "%s:%d: FAILED: %s == %s (%lld != %lld)\n", __FILE__, __LINE__,  \
                    #a, #b, a_, b_);                                                         \
            t_failures++;                                                                    \
        }                                                                                    \
    } while (0)

/** `call` (returning a pointer) must return NULL and set errno to `err`. */
#define CHECK_NULL_ERRNO(call, err)                                                          \
    do {                                                                                     \
        errno = 0;                                                                           \
        const void *p_ = (const void *)(call);                                               \
        int e_ = errno;                                                                      \
        if (p_ == NULL && e_ == (err)) t_checks++;                                           \
        else {                                                                               \
            fprintf(stderr, "%s:%d: FAILED: %s: expected NULL/%s, got %p/errno %d (%s)\n",   \
                    __FILE__, __LINE__, #call, #err, p_, e_, strerror(e_));                  \
            t_failures++;                                                                    \
        }                                                                                    \
    } while (0)

/** `call` (returning int) must return -1 and set errno to `err`. */
#define CHECK_FAIL_ERRNO(call, err)                                                          \
    do {                                                                                     \
        errno = 0;                                                                           \
        long long r_ = (long long)(call);                                                    \
        int e_ = errno;                                                                      \
        if (r_ == -1 && e_ == (err)) t_checks++;                                             \
        else {                                                                               \
            fprintf(stderr, "%s:%d: FAILED: %s: expected -1/%s, got %lld/errno %d (%s)\n",   \
                    __FILE__, __LINE__, #call, #err, r_, e_, strerror(e_));                  \
            t_failures++;                                                                    \
        }                                                                                    \
    } while (0)

/** `call` (returning int) must return 0. */
#define CHECK_OK(call)                                                                       \
    do {                                                                                     \
        errno = 0;                                                                           \
        long long r_ = (long long)(call);                                                    \
        if (r_ == 0) t_checks++;                                                             \
        else {                                                                               \
            int e_ = errno;                                                                  \
            fprintf(stderr, "%s:%d: FAILED: %s returned %lld (errno %d: %s)\n", __FILE__,    \
                    __LINE__, #call, r_, e_, strerror(e_));                                  \
            t_failures++;                                                                    \
        }                                                                                    \
    } while (0)

/** Fatal precondition: report and stop the program. */
#define REQUIRE(cond)                                                                        \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            T_FAIL_AT(__FILE__, __LINE__, #cond);                                            \
            fprintf(stderr, "%s: stopping after a failed precondition\n", t_name);           \
            exit(1);                                                                         \
        }                                                                                    \
        t_checks++;                                                                          \
    } while (0)

static inline int t_finish(void) {
    if (t_failures) {
        fprintf(stderr, "%s: %d of %d checks FAILED\n", t_name, t_failures,
                t_checks + t_failures);
        return 1;
    }
    printf("%s: %d checks passed\n", t_name, t_checks);
    return 0;
}

/** An engine with default options, or exit 77 when io_uring cannot be used here. */
static inline aura_engine_t *t_engine(void) {
    aura_engine_t *e = aura_create();
    if (!e) {
        if (errno == ENOSYS || errno == EPERM || errno == EACCES) {
            printf("skipped: %s: io_uring unavailable (%s)\n", t_name, strerror(errno));
            exit(77);
        }
        fprintf(stderr, "%s: aura_create: %s\n", t_name, strerror(errno));
        exit(1);
    }
    return e;
}

/** Byte `i` of the test pattern `seed`: differs per position and per seed. */
static inline unsigned char t_pat(unsigned seed, size_t i) {
    return (unsigned char)((i * 31u) + seed * 7u + (i >> 8));
}

static inline void t_fill(void *buf, size_t len, unsigned seed, size_t base) {
    unsigned char *p = (unsigned char *)buf;
    for (size_t i = 0; i < len; i++) p[i] = t_pat(seed, base + i);
}

static inline int t_matches(const void *buf, size_t len, unsigned seed, size_t base) {
    const unsigned char *p = (const unsigned char *)buf;
    for (size_t i = 0; i < len; i++)
        if (p[i] != t_pat(seed, base + i)) return 0;
    return 1;
}

/** A directory for temporary files: $TMPDIR or /tmp. */
static inline const char *t_tmpdir(void) {
    const char *d = getenv("TMPDIR");
    return d && *d ? d : "/tmp";
}

/** Creates a temporary file holding `len` bytes of pattern `seed` (len may be 0); fills `path`
 *  (at least 256 bytes) and returns an fd opened read-write. */
static inline int t_tempfile(char *path, size_t path_size, unsigned seed, size_t len) {
    snprintf(path, path_size, "%s/aura-ctest-XXXXXX", t_tmpdir());
    int fd = mkstemp(path);
    if (fd < 0) {
        perror("mkstemp");
        exit(1);
    }
    if (len) {
        unsigned char *buf = (unsigned char *)malloc(len);
        if (!buf) exit(1);
        t_fill(buf, len, seed, 0);
        if (pwrite(fd, buf, len, 0) != (ssize_t)len) {
            perror("pwrite");
            exit(1);
        }
        free(buf);
    }
    return fd;
}

/** What a completion callback saw (t_cb). */
typedef struct {
    int calls;
    ssize_t result;
    int fd;
    void *user_data;
    int op;
    int pending;
    int in_cb;
} t_rec;

/** A callback recording everything into the t_rec passed as user_data. */
static inline void t_cb(aura_request_t *req, ssize_t result, void *ud) {
    t_rec *r = (t_rec *)ud;
    r->calls++;
    r->result = result;
    r->fd = aura_request_fd(req);
    r->user_data = aura_request_user_data(req);
    r->op = (int)aura_request_op_type(req);
    r->pending = aura_request_pending(req);
    r->in_cb = aura_in_callback_context();
}

static inline void t_rec_init(t_rec *r) {
    memset(r, 0, sizeof *r);
    r->result = -1000000;
}

/** Runs aura_wait until `*count` reaches `target` (at most ~10 s). 0 = reached. */
static inline int t_wait_count(aura_engine_t *e, const int *count, int target) {
    for (int i = 0; i < 100 && *count < target; i++) {
        int n = aura_wait(e, 100);
        if (n < 0 && errno != ETIMEDOUT) return -1;
    }
    return *count >= target ? 0 : -1;
}

/** Waits for one t_rec to be called. */
static inline int t_wait_rec(aura_engine_t *e, t_rec *r) { return t_wait_count(e, &r->calls, 1); }

#endif /* AURA_TEST_COMMON_H */
