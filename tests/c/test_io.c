/* test_io: data operations, request introspection, cancel and the event loop, against real
 * temporary files (data checked byte for byte) and pipes; every bad argument checked for its
 * return value and errno.
 *
 * Functions: aura_read, aura_write, aura_readv, aura_writev, aura_fsync, aura_cancel,
 * aura_request_pending, aura_request_fd, aura_request_user_data, aura_request_op_type,
 * aura_request_is_linked, aura_request_set_linked, aura_get_poll_fd, aura_poll, aura_wait,
 * aura_flush, aura_run, aura_stop, aura_drain, aura_in_callback_context, aura_destroy (with
 * I/O in flight), aura_create_with_options (THREAD_LOCAL, linked chains).
 */
#include "test_common.h"

#include <poll.h>
#include <pthread.h>

#define BIG 65536

static aura_engine_t *E;
static char path[512];
static int fd; /* BIG bytes of pattern 1 */

static void bad_arguments(void) {
    char buf[64];
    struct iovec iov = {buf, sizeof buf};
    struct iovec *many = (struct iovec *)calloc(IOV_MAX + 1, sizeof *many);
    REQUIRE(many != NULL);
    for (int i = 0; i <= IOV_MAX; i++) {
        many[i].iov_base = buf;
        many[i].iov_len = 1;
    }
    t_rec r;
    t_rec_init(&r);

    /* read / write */
    CHECK_NULL_ERRNO(aura_read(NULL, fd, aura_buf(buf), 64, 0, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_read(E, -1, aura_buf(buf), 64, 0, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_read(E, fd, aura_buf(buf), 0, 0, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_read(E, fd, aura_buf(buf), (size_t)UINT_MAX + 1, 0, 0, t_cb, &r),
                     EINVAL);
    CHECK_NULL_ERRNO(aura_read(E, fd, aura_buf(NULL), 64, 0, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_read(E, fd, aura_buf_fixed(-1, 0), 64, 0, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_read(E, fd, aura_buf(buf), 64, -1, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_read(E, fd, aura_buf(buf), 64, 0, 0x80, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_read(E, fd, aura_buf(buf), 64, 0, ~0u, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_write(NULL, fd, aura_buf(buf), 64, 0, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_write(E, -1, aura_buf(buf), 64, 0, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_write(E, fd, aura_buf(buf), 0, 0, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_write(E, fd, aura_buf(buf), (size_t)UINT_MAX + 1, 0, 0, t_cb, &r),
                     EINVAL);
    CHECK_NULL_ERRNO(aura_write(E, fd, aura_buf(NULL), 64, 0, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_write(E, fd, aura_buf(buf), 64, -5, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_write(E, fd, aura_buf(buf), 64, 0, 2, t_cb, &r), EINVAL);

    /* readv / writev */
    CHECK_NULL_ERRNO(aura_readv(NULL, fd, &iov, 1, 0, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_readv(E, -1, &iov, 1, 0, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_readv(E, fd, NULL, 1, 0, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_readv(E, fd, &iov, 0, 0, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_readv(E, fd, &iov, -1, 0, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_readv(E, fd, many, IOV_MAX + 1, 0, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_readv(E, fd, &iov, 1, -1, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_readv(E, fd, &iov, 1, 0, 0x10, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_writev(NULL, fd, &iov, 1, 0, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_writev(E, -1, &iov, 1, 0, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_writev(E, fd, NULL, 1, 0, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_writev(E, fd, &iov, 0, 0, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_writev(E, fd, many, IOV_MAX + 1, 0, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_writev(E, fd, &iov, 1, 0, 0x10, t_cb, &r), EINVAL);

    /* fsync */
    CHECK_NULL_ERRNO(aura_fsync(NULL, fd, AURA_FSYNC_DEFAULT, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_fsync(E, -1, AURA_FSYNC_DEFAULT, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_fsync(E, fd, 2, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_fsync(E, fd, AURA_FSYNC_DEFAULT, 0x40, t_cb, &r), EINVAL);

    /* Nothing above reached the kernel. */
    CHECK_EQ(aura_pending_count(E), 0);
    CHECK_EQ(aura_wait(E, 0), 0);
    CHECK_EQ(r.calls, 0);
    free(many);
}

static void read_write_roundtrip(void) {
    unsigned char *buf = (unsigned char *)aura_buffer_alloc(E, BIG);
    REQUIRE(buf != NULL);
    t_rec r;

    /* A read in the middle of the file. */
    t_rec_init(&r);
    memset(buf, 0, BIG);
    aura_request_t *req = aura_read(E, fd, aura_buf(buf), 5000, 1234, 0, t_cb, &r);
    CHECK(req != NULL);
    CHECK(aura_pending_count(E) >= 0);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.calls, 1);
    CHECK_EQ(r.result, 5000);
    CHECK(t_matches(buf, 5000, 1, 1234));
    CHECK_EQ(r.fd, fd);
    CHECK(r.user_data == (void *)&r);
    CHECK_EQ(r.op, AURA_OP_READ);
    CHECK(!r.pending);
    CHECK(r.in_cb);
    CHECK(!aura_in_callback_context());

    /* Short read at the end, 0 at and past EOF. */
    t_rec_init(&r);
    if (aura_read(E, fd, aura_buf(buf), 4096, BIG - 100, 0, t_cb, &r) == NULL) CHECK(0);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.result, 100);
    CHECK(t_matches(buf, 100, 1, BIG - 100));
    t_rec_init(&r);
    if (aura_read(E, fd, aura_buf(buf), 4096, BIG + 4096, 0, t_cb, &r) == NULL) CHECK(0);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.result, 0);

    /* The seed's 7-argument call shape does real I/O too. */
    t_rec_init(&r);
    if (aura_read(E, fd, aura_buf(buf), 512, 512, t_cb, &r) == NULL) CHECK(0);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.result, 512);
    CHECK(t_matches(buf, 512, 1, 512));

    /* Writes: pattern 2 over [8192, 8192+3000), read back with pread. */
    t_fill(buf, 3000, 2, 0);
    t_rec_init(&r);
    req = aura_write(E, fd, aura_buf(buf), 3000, 8192, 0, t_cb, &r);
    CHECK(req != NULL);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.result, 3000);
    CHECK_EQ(r.op, AURA_OP_WRITE);
    unsigned char check[3000];
    CHECK_EQ(pread(fd, check, 3000, 8192), 3000);
    CHECK(t_matches(check, 3000, 2, 0));
    /* Restore pattern 1 there, through the 7-argument write. */
    t_fill(buf, 3000, 1, 8192);
    t_rec_init(&r);
    if (aura_write(E, fd, aura_buf(buf), 3000, 8192, t_cb, &r) == NULL) CHECK(0);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.result, 3000);

    /* A NULL callback: fire and forget; aura_drain still waits for it. */
    char scratch_path[512];
    int sfd = t_tempfile(scratch_path, sizeof scratch_path, 0, 0);
    t_fill(buf, 4096, 9, 0);
    req = aura_write(E, sfd, aura_buf(buf), 4096, 0, 0, NULL, NULL);
    CHECK(req != NULL);
    CHECK(aura_drain(E, 5000) >= 0);
    CHECK_EQ(aura_pending_count(E), 0);
    CHECK_EQ(pread(sfd, check, 3000, 0), 3000);
    CHECK(t_matches(check, 3000, 9, 0));

    /* A closed fd number: the kernel's -EBADF reaches the callback. */
    int closed = dup(sfd);
    close(closed);
    t_rec_init(&r);
    if (aura_read(E, closed, aura_buf(buf), 16, 0, 0, t_cb, &r) == NULL) {
        CHECK(errno == EBADF); /* refused at submission is fine too */
    } else {
        REQUIRE(t_wait_rec(E, &r) == 0);
        CHECK_EQ(r.result, -EBADF);
    }
    /* Writing to a read-only fd: -EBADF in the callback. */
    int ro = open(path, O_RDONLY);
    t_rec_init(&r);
    if (aura_write(E, ro, aura_buf(buf), 16, 0, 0, t_cb, &r) == NULL) CHECK(0);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.result, -EBADF);
    close(ro);
    close(sfd);
    unlink(scratch_path);
    aura_buffer_free(E, buf);
}

static void vectored(void) {
    /* writev from 3 buffers at offset 100, readv back into 4 differently sized ones. */
    char scratch_path[512];
    int sfd = t_tempfile(scratch_path, sizeof scratch_path, 0, 0);
    static unsigned char a[100], b[5000], c[1];
    t_fill(a, sizeof a, 3, 0);
    t_fill(b, sizeof b, 3, sizeof a);
    t_fill(c, sizeof c, 3, sizeof a + sizeof b);
    struct iovec out[3] = {{a, sizeof a}, {b, sizeof b}, {c, sizeof c}};
    t_rec r;
    t_rec_init(&r);
    CHECK(aura_writev(E, sfd, out, 3, 100, 0, t_cb, &r) != NULL);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.result, 5101);
    CHECK_EQ(r.op, AURA_OP_WRITEV);
    CHECK_EQ(r.fd, sfd);

    static unsigned char w[1], x[2000], y[3000], z[500];
    struct iovec in[4] = {{w, sizeof w}, {x, sizeof x}, {y, sizeof y}, {z, sizeof z}};
    t_rec_init(&r);
    CHECK(aura_readv(E, sfd, in, 4, 100, 0, t_cb, &r) != NULL);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.result, 5101); /* the file ends at 5201 */
    CHECK_EQ(r.op, AURA_OP_READV);
    CHECK(t_matches(w, 1, 3, 0) && t_matches(x, 2000, 3, 1) && t_matches(y, 3000, 3, 2001) &&
          t_matches(z, 100, 3, 5001));

    /* Exactly IOV_MAX entries is allowed: 1024 one-byte reads of the pattern file. */
    struct iovec *many = (struct iovec *)calloc(IOV_MAX, sizeof *many);
    unsigned char *bytes = (unsigned char *)calloc(IOV_MAX, 1);
    REQUIRE(many && bytes);
    for (int i = 0; i < IOV_MAX; i++) {
        many[i].iov_base = bytes + (IOV_MAX - 1 - i); /* reversed order in memory */
        many[i].iov_len = 1;
    }
    t_rec_init(&r);
    CHECK(aura_readv(E, fd, many, IOV_MAX, 0, 0, t_cb, &r) != NULL);
    /* The iovec array is copied at submission: scribbling on it now must not matter. */
    memset(many, 0, IOV_MAX * sizeof *many);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.result, IOV_MAX);
    int ok = 1;
    for (int i = 0; i < IOV_MAX; i++) ok &= bytes[IOV_MAX - 1 - i] == t_pat(1, (size_t)i);
    CHECK(ok);
    free(many);
    free(bytes);
    close(sfd);
    unlink(scratch_path);
}

static void fsyncs(void) {
    t_rec r;
    t_rec_init(&r);
    CHECK(aura_fsync(E, fd, AURA_FSYNC_DEFAULT, 0, t_cb, &r) != NULL);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.result, 0);
    CHECK_EQ(r.op, AURA_OP_FSYNC);
    t_rec_init(&r);
    CHECK(aura_fsync(E, fd, AURA_FSYNC_DATASYNC, t_cb, &r) != NULL); /* 5-argument shape */
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.result, 0);
    CHECK_EQ(r.op, AURA_OP_FDATASYNC);
}

static void request_getters(void) {
    CHECK(!aura_request_pending(NULL));
    CHECK_FAIL_ERRNO(aura_request_fd(NULL), EINVAL);
    CHECK(aura_request_user_data(NULL) == NULL);
    CHECK_EQ((int)aura_request_op_type(NULL), -1);
    CHECK(!aura_request_is_linked(NULL));
    CHECK_FAIL_ERRNO(aura_request_set_linked(NULL), EINVAL);

    /* A request still in flight: a read from an empty pipe. */
    int p[2];
    REQUIRE(pipe(p) == 0);
    /* Read buffers are initialised first: valgrind cannot see the kernel's io_uring writes. */
    char buf[8] = {0};
    t_rec r;
    t_rec_init(&r);
    aura_request_t *req = aura_read(E, p[0], aura_buf(buf), sizeof buf, 0, 0, t_cb, &r);
    REQUIRE(req != NULL);
    CHECK_OK(aura_flush(E));
    CHECK(aura_request_pending(req));
    CHECK_EQ(aura_request_fd(req), p[0]);
    CHECK(aura_request_user_data(req) == (void *)&r);
    CHECK_EQ((int)aura_request_op_type(req), AURA_OP_READ);
    CHECK(!aura_request_is_linked(req));
    /* Linking needs AURA_SELECT_THREAD_LOCAL: EINVAL here. */
    CHECK_FAIL_ERRNO(aura_request_set_linked(req), EINVAL);
    CHECK(!aura_request_is_linked(req));
    CHECK(aura_pending_count(E) >= 1);
    /* Complete it by writing to the pipe. */
    CHECK_EQ(write(p[1], "pipedata", 8), 8);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.result, 8);
    CHECK(memcmp(buf, "pipedata", 8) == 0);
    close(p[0]);
    close(p[1]);

    /* Linking needs AURA_SELECT_THREAD_LOCAL: see linked_chains(). */
}

/* --- linked requests (aura_request_set_linked, THREAD_LOCAL mode) ----------------------- */

/* The order callbacks ran in, and their results. */
static int link_order[16];
static ssize_t link_result[16];
static int link_n;

static void link_cb(aura_request_t *req, ssize_t result, void *ud) {
    (void)req;
    if (link_n < 16) {
        link_order[link_n] = (int)(intptr_t)ud;
        link_result[link_n] = result;
    }
    link_n++;
}

static void link_reset(void) {
    link_n = 0;
    memset(link_order, 0, sizeof link_order);
    for (int i = 0; i < 16; i++) link_result[i] = -1000000;
}

static aura_engine_t *thread_local_engine(void) {
    aura_options_t o;
    aura_options_init(&o);
    o.ring_select = AURA_SELECT_THREAD_LOCAL;
    o.ring_count = 1;
    return aura_create_with_options(&o);
}

static void linked_chains(void) {
    aura_engine_t *tl = thread_local_engine();
    REQUIRE(tl != NULL);
    char wpath[512];
    int wfd = t_tempfile(wpath, sizeof wpath, 0, 0);
    static unsigned char wbuf[8192], rbuf[8192];
    t_fill(wbuf, sizeof wbuf, 9, 0);
    memset(rbuf, 0, sizeof rbuf);

    /* write -> fsync -> read back: run in order, each after the previous succeeded. */
    link_reset();
    aura_request_t *a = aura_write(tl, wfd, aura_buf(wbuf), sizeof wbuf, 0, 0, link_cb, (void *)1);
    REQUIRE(a != NULL);
    CHECK(!aura_request_is_linked(a));
    CHECK_OK(aura_request_set_linked(a));
    CHECK_OK(aura_request_set_linked(a)); /* twice on the same head: still one link */
    CHECK(aura_request_is_linked(a));
    aura_request_t *b = aura_fsync(tl, wfd, 0, 0, link_cb, (void *)2);
    REQUIRE(b != NULL);
    CHECK(aura_request_pending(b));
    CHECK_FAIL_ERRNO(aura_request_set_linked(a), EINVAL); /* a already has its successor */
    CHECK_OK(aura_request_set_linked(b));
    aura_request_t *c = aura_read(tl, wfd, aura_buf(rbuf), sizeof rbuf, 0, 0, link_cb, (void *)3);
    REQUIRE(c != NULL);
    CHECK(!aura_request_is_linked(c));
    REQUIRE(t_wait_count(tl, &link_n, 3) == 0);
    CHECK_EQ(link_n, 3);
    CHECK_EQ(link_order[0], 1);
    CHECK_EQ(link_order[1], 2);
    CHECK_EQ(link_order[2], 3);
    CHECK_EQ(link_result[0], (ssize_t)sizeof wbuf);
    CHECK_EQ(link_result[1], 0);
    CHECK_EQ(link_result[2], (ssize_t)sizeof rbuf);
    CHECK(t_matches(rbuf, sizeof rbuf, 9, 0));

    /* A failing head (-EBADF: reading a write-only fd) cancels the rest of the chain, after its
     * own callback, and the request after the chain runs normally. */
    int wo = open(wpath, O_WRONLY);
    REQUIRE(wo >= 0);
    link_reset();
    a = aura_read(tl, wo, aura_buf(rbuf), 512, 0, 0, link_cb, (void *)1);
    REQUIRE(a != NULL);
    CHECK_OK(aura_request_set_linked(a));
    b = aura_read(tl, wfd, aura_buf(rbuf), 512, 0, 0, link_cb, (void *)2);
    REQUIRE(b != NULL);
    CHECK_OK(aura_request_set_linked(b));
    c = aura_write(tl, wfd, aura_buf(wbuf), 512, 0, 0, link_cb, (void *)3);
    REQUIRE(c != NULL);
    aura_request_t *d = aura_read(tl, wfd, aura_buf(rbuf + 4096), 16, 0, 0, link_cb, (void *)4);
    REQUIRE(d != NULL);
    REQUIRE(t_wait_count(tl, &link_n, 4) == 0);
    CHECK_EQ(link_n, 4);
    for (int i = 0; i < 4 && i < link_n; i++) {
        int who = link_order[i];
        if (who == 1) CHECK_EQ(link_result[i], -EBADF);
        else if (who == 2 || who == 3) CHECK_EQ(link_result[i], -ECANCELED);
        else CHECK_EQ(link_result[i], 16);
    }
    /* The head's callback came before its successors', and 2 before 3. */
    int pos[5] = {0};
    for (int i = 0; i < 4 && i < link_n; i++) pos[link_order[i]] = i;
    CHECK(pos[1] < pos[2]);
    CHECK(pos[2] < pos[3]);
    close(wo);

    /* A short read breaks the chain too (IOSQE_IO_LINK's rule). */
    link_reset();
    a = aura_read(tl, wfd, aura_buf(rbuf), 64, (off_t)sizeof wbuf - 16, 0, link_cb, (void *)1);
    REQUIRE(a != NULL);
    CHECK_OK(aura_request_set_linked(a));
    b = aura_fsync(tl, wfd, 0, 0, link_cb, (void *)2);
    REQUIRE(b != NULL);
    REQUIRE(t_wait_count(tl, &link_n, 2) == 0);
    CHECK_EQ(link_order[0], 1);
    CHECK_EQ(link_result[0], 16);
    CHECK_EQ(link_order[1], 2);
    CHECK_EQ(link_result[1], -ECANCELED);

    /* The head completes before the successor is submitted: success lets it run, failure
     * cancels it (its callback still runs in wait, not in the submission). */
    link_reset();
    a = aura_fsync(tl, wfd, 0, 0, link_cb, (void *)1);
    REQUIRE(a != NULL);
    CHECK_OK(aura_request_set_linked(a));
    REQUIRE(t_wait_count(tl, &link_n, 1) == 0);
    CHECK_FAIL_ERRNO(aura_request_set_linked(a), EINVAL); /* completed */
    b = aura_read(tl, wfd, aura_buf(rbuf), 32, 0, 0, link_cb, (void *)2);
    REQUIRE(b != NULL);
    REQUIRE(t_wait_count(tl, &link_n, 2) == 0);
    CHECK_EQ(link_result[1], 32);
    wo = open(wpath, O_WRONLY);
    REQUIRE(wo >= 0);
    link_reset();
    a = aura_read(tl, wo, aura_buf(rbuf), 32, 0, 0, link_cb, (void *)1);
    REQUIRE(a != NULL);
    CHECK_OK(aura_request_set_linked(a));
    REQUIRE(t_wait_count(tl, &link_n, 1) == 0);
    CHECK_EQ(link_result[0], -EBADF);
    b = aura_read(tl, wfd, aura_buf(rbuf), 32, 0, 0, link_cb, (void *)2);
    REQUIRE(b != NULL);
    CHECK_EQ(link_n, 1); /* not run inside the submission */
    REQUIRE(t_wait_count(tl, &link_n, 2) == 0);
    CHECK_EQ(link_result[1], -ECANCELED);
    close(wo);

    /* Cancelling a held successor: it completes with -ECANCELED once its head does, and is
     * never submitted (the pipe keeps the head in flight meanwhile). */
    int p[2];
    REQUIRE(pipe(p) == 0);
    char pbuf[8] = {0};
    link_reset();
    a = aura_read(tl, p[0], aura_buf(pbuf), sizeof pbuf, 0, 0, link_cb, (void *)1);
    REQUIRE(a != NULL);
    CHECK_OK(aura_request_set_linked(a));
    b = aura_write(tl, wfd, aura_buf(wbuf), 64, 0, 0, link_cb, (void *)2);
    REQUIRE(b != NULL);
    CHECK_OK(aura_flush(tl));
    CHECK(aura_request_pending(a));
    CHECK(aura_request_pending(b));
    CHECK_OK(aura_cancel(tl, b));
    CHECK_EQ(aura_poll(tl), 0);
    CHECK_EQ(write(p[1], "pipedata", 8), 8);
    REQUIRE(t_wait_count(tl, &link_n, 2) == 0);
    CHECK_EQ(link_n, 2);
    for (int i = 0; i < 2; i++) /* no order promised between a cancel and its head */
        CHECK_EQ(link_result[i], link_order[i] == 1 ? 8 : -ECANCELED);
    CHECK(link_order[0] + link_order[1] == 3);

    /* Destroy with a held successor: the drain completes the head (the pipe is written first)
     * and then the successor, before aura_destroy returns. */
    link_reset();
    a = aura_read(tl, p[0], aura_buf(pbuf), sizeof pbuf, 0, 0, link_cb, (void *)1);
    REQUIRE(a != NULL);
    CHECK_OK(aura_request_set_linked(a));
    b = aura_read(tl, wfd, aura_buf(rbuf), 128, 0, 0, link_cb, (void *)2);
    REQUIRE(b != NULL);
    CHECK_EQ(write(p[1], "pipedata", 8), 8);
    aura_destroy(tl);
    CHECK_EQ(link_n, 2);
    CHECK_EQ(link_order[0], 1);
    CHECK_EQ(link_result[0], 8);
    CHECK_EQ(link_order[1], 2);
    CHECK(link_result[1] == 128 || link_result[1] == -ESHUTDOWN);
    close(p[0]);
    close(p[1]);
    close(wfd);
    unlink(wpath);
}

/* --- cancel --------------------------------------------------------------------------------- */

typedef struct {
    int calls;
    ssize_t result;
    int cancel_rc, cancel_errno;
} cancel_rec;

static void cancel_self_cb(aura_request_t *req, ssize_t result, void *ud) {
    cancel_rec *c = (cancel_rec *)ud;
    c->calls++;
    c->result = result;
    errno = 0;
    c->cancel_rc = aura_cancel(E, req); /* the request has completed: EALREADY */
    c->cancel_errno = errno;
}

static void cancels(void) {
    int p[2];
    REQUIRE(pipe(p) == 0);
    char buf[8] = {0};
    cancel_rec c;
    memset(&c, 0, sizeof c);
    aura_request_t *req = aura_read(E, p[0], aura_buf(buf), sizeof buf, 0, 0, cancel_self_cb, &c);
    REQUIRE(req != NULL);
    CHECK_FAIL_ERRNO(aura_cancel(NULL, req), EINVAL);
    CHECK_FAIL_ERRNO(aura_cancel(E, NULL), EINVAL);
    CHECK_FAIL_ERRNO(aura_wait(E, 30), ETIMEDOUT); /* still pending */
    CHECK_EQ(c.calls, 0);
    CHECK_OK(aura_cancel(E, req));
    REQUIRE(t_wait_count(E, &c.calls, 1) == 0);
    CHECK_EQ(c.calls, 1);
    CHECK_EQ(c.result, -ECANCELED);
    CHECK_EQ(c.cancel_rc, -1);
    CHECK_EQ(c.cancel_errno, EALREADY);
    /* The cancel's own completion has no callback and is not counted as pending. */
    CHECK_EQ(aura_drain(E, 1000) >= 0, 1);
    CHECK_EQ(aura_pending_count(E), 0);
    CHECK_EQ(c.calls, 1);

    /* A request of another engine: EINVAL. */
    aura_engine_t *other = t_engine();
    memset(&c, 0, sizeof c);
    aura_request_t *foreign = aura_read(other, p[0], aura_buf(buf), 4, 0, 0, cancel_self_cb, &c);
    REQUIRE(foreign != NULL);
    CHECK_FAIL_ERRNO(aura_cancel(E, foreign), EINVAL);
    CHECK_EQ(write(p[1], "abcd", 4), 4);
    CHECK(t_wait_count(other, &c.calls, 1) == 0);
    CHECK_EQ(c.result, 4);
    aura_destroy(other);

    /* Cancelling a regular-file read races with its completion: either result is valid, but the
     * callback runs exactly once. */
    char b2[4096] = {0};
    t_rec r;
    t_rec_init(&r);
    req = aura_read(E, fd, aura_buf(b2), sizeof b2, 0, 0, t_cb, &r);
    REQUIRE(req != NULL);
    errno = 0;
    int rc = aura_cancel(E, req);
    CHECK(rc == 0 || (rc == -1 && errno == EALREADY));
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK(r.result == 4096 || r.result == -ECANCELED);
    CHECK_EQ(aura_drain(E, 1000) >= 0, 1);
    CHECK_EQ(r.calls, 1);
    close(p[0]);
    close(p[1]);
}

/* --- event loop ------------------------------------------------------------------------------ */

typedef struct {
    int calls;
    int poll_rc, poll_errno, wait_rc, wait_errno, drain_rc, drain_errno;
    int submit_ok;
    t_rec inner;
} nested_rec;

static void nested_cb(aura_request_t *req, ssize_t result, void *ud) {
    nested_rec *n = (nested_rec *)ud;
    static char buf[32]; /* zero-initialised */
    (void)req;
    (void)result;
    n->calls++;
    errno = 0;
    n->poll_rc = aura_poll(E);
    n->poll_errno = errno;
    errno = 0;
    n->wait_rc = aura_wait(E, 10);
    n->wait_errno = errno;
    errno = 0;
    n->drain_rc = aura_drain(E, 10);
    n->drain_errno = errno;
    aura_run(E);     /* refused from a callback: returns at once */
    aura_destroy(E); /* refused from a callback: no-op */
    /* Submitting from a callback is allowed. */
    n->submit_ok = aura_read(E, fd, aura_buf(buf), sizeof buf, 64, 0, t_cb, &n->inner) != NULL;
}

static void stop_cb(aura_request_t *req, ssize_t result, void *ud) {
    (void)req;
    (void)result;
    (*(int *)ud)++;
    aura_stop(E);
}

static void *stop_later(void *arg) {
    (void)arg;
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    aura_stop(E);
    return NULL;
}

static void event_loop(void) {
    CHECK_FAIL_ERRNO(aura_poll(NULL), EINVAL);
    CHECK_FAIL_ERRNO(aura_wait(NULL, 0), EINVAL);
    CHECK_FAIL_ERRNO(aura_drain(NULL, 0), EINVAL);
    CHECK_FAIL_ERRNO(aura_flush(NULL), EINVAL);
    CHECK_FAIL_ERRNO(aura_get_poll_fd(NULL), EINVAL);
    aura_run(NULL);  /* does nothing */
    aura_stop(NULL); /* does nothing */

    /* Nothing pending. */
    CHECK_EQ(aura_poll(E), 0);
    CHECK_EQ(aura_wait(E, 100), 0);
    CHECK_EQ(aura_wait(E, -1), 0);
    CHECK_EQ(aura_drain(E, 100), 0);
    CHECK_OK(aura_flush(E));

    /* poll/wait/drain/run/destroy from a callback are refused; submitting works. */
    nested_rec n;
    memset(&n, 0, sizeof n);
    t_rec_init(&n.inner);
    char buf[64] = {0};
    CHECK(aura_read(E, fd, aura_buf(buf), 64, 0, 0, nested_cb, &n) != NULL);
    REQUIRE(t_wait_count(E, &n.calls, 1) == 0);
    CHECK_EQ(n.poll_rc, -1);
    CHECK_EQ(n.poll_errno, EDEADLK);
    CHECK_EQ(n.wait_rc, -1);
    CHECK_EQ(n.wait_errno, EDEADLK);
    CHECK_EQ(n.drain_rc, -1);
    CHECK_EQ(n.drain_errno, EDEADLK);
    CHECK(n.submit_ok);
    REQUIRE(t_wait_rec(E, &n.inner) == 0);
    CHECK_EQ(n.inner.result, 32);
    CHECK(t_matches(buf, 64, 1, 0));
    CHECK_EQ(n.calls, 1);

    /* aura_run until a callback calls aura_stop. */
    int stops = 0;
    CHECK(aura_read(E, fd, aura_buf(buf), 64, 0, 0, stop_cb, &stops) != NULL);
    aura_run(E);
    CHECK_EQ(stops, 1);
    /* aura_run until another thread calls aura_stop. */
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, stop_later, NULL) == 0);
    aura_run(E);
    pthread_join(th, NULL);
    CHECK(1); /* returned */

    /* The poll fd: stable, non-blocking, close-on-exec, readable once a completion is ready. */
    int pfd = aura_get_poll_fd(E);
    CHECK(pfd >= 0);
    CHECK_EQ(aura_get_poll_fd(E), pfd);
    CHECK(fcntl(pfd, F_GETFL) & O_NONBLOCK);
    CHECK(fcntl(pfd, F_GETFD) & FD_CLOEXEC);
    t_rec r;
    t_rec_init(&r);
    CHECK(aura_read(E, fd, aura_buf(buf), 64, 128, 0, t_cb, &r) != NULL);
    CHECK_OK(aura_flush(E));
    struct pollfd pf = {pfd, POLLIN, 0};
    CHECK_EQ(poll(&pf, 1, 5000), 1);
    CHECK(pf.revents & POLLIN);
    int got = 0;
    for (int i = 0; i < 100 && r.calls == 0; i++) {
        int k = aura_poll(E);
        CHECK(k >= 0);
        got += k > 0 ? k : 0;
        if (r.calls == 0) poll(&pf, 1, 10);
    }
    CHECK_EQ(r.calls, 1);
    CHECK(got >= 1);
    CHECK_EQ(r.result, 64);
    CHECK(t_matches(buf, 64, 1, 128));

    /* Timeouts with an operation that cannot finish. */
    int p[2];
    REQUIRE(pipe(p) == 0);
    t_rec_init(&r);
    CHECK(aura_read(E, p[0], aura_buf(buf), 4, 0, 0, t_cb, &r) != NULL);
    CHECK_FAIL_ERRNO(aura_wait(E, 20), ETIMEDOUT);
    CHECK_FAIL_ERRNO(aura_drain(E, 20), ETIMEDOUT);
    CHECK_EQ(aura_poll(E), 0);
    CHECK_EQ(aura_pending_count(E), 1);
    CHECK_EQ(write(p[1], "wxyz", 4), 4);
    CHECK_EQ(aura_drain(E, 5000), 1);
    CHECK_EQ(r.result, 4);
    CHECK_EQ(aura_pending_count(E), 0);
    close(p[0]);
    close(p[1]);
}

/* --- destroy with I/O in flight --------------------------------------------------------------- */

typedef struct {
    int calls;
    int bad;
    unsigned char *bufs;
} inflight_rec;

static inflight_rec inflight;

static void inflight_cb(aura_request_t *req, ssize_t result, void *ud) {
    size_t i = (size_t)(uintptr_t)ud;
    (void)req;
    inflight.calls++;
    if (result != 4096 || !t_matches(inflight.bufs + i * 4096, 4096, 1, (i * 4096) % BIG))
        inflight.bad++;
}

static void destroy_in_flight(void) {
    aura_destroy(NULL); /* does nothing */
    aura_engine_t *e = t_engine();
    enum { N = 256 };
    inflight.bufs = (unsigned char *)calloc((size_t)N, 4096);
    REQUIRE(inflight.bufs != NULL);
    int submitted = 0;
    for (int i = 0; i < N; i++) {
        aura_request_t *q = aura_read(e, fd, aura_buf(inflight.bufs + (size_t)i * 4096), 4096,
                                      (off_t)(((size_t)i * 4096) % BIG), 0, inflight_cb,
                                      (void *)(uintptr_t)i);
        if (q) submitted++;
        else CHECK(errno == EAGAIN); /* the only acceptable refusal */
    }
    CHECK(submitted > 0);
    /* Writes in flight too: they must land before destroy returns. */
    char wpath[512];
    int wfd = t_tempfile(wpath, sizeof wpath, 0, 0);
    static unsigned char wbuf[16384];
    t_fill(wbuf, sizeof wbuf, 5, 0);
    CHECK(aura_write(e, wfd, aura_buf(wbuf), sizeof wbuf, 0, 0, NULL, NULL) != NULL);
    aura_destroy(e); /* drains: every callback runs here, before anything is freed */
    CHECK_EQ(inflight.calls, submitted);
    CHECK_EQ(inflight.bad, 0);
    unsigned char back[16384];
    CHECK_EQ(pread(wfd, back, sizeof back, 0), (ssize_t)sizeof back);
    CHECK(t_matches(back, sizeof back, 5, 0));
    close(wfd);
    unlink(wpath);
    free(inflight.bufs);
}

int main(void) {
    t_name = "test_io";
    E = t_engine();
    fd = t_tempfile(path, sizeof path, 1, BIG);
    bad_arguments();
    read_write_roundtrip();
    vectored();
    fsyncs();
    request_getters();
    linked_chains();
    cancels();
    event_loop();
    destroy_in_flight();
    aura_destroy(E);
    close(fd);
    unlink(path);
    return t_finish();
}
