/* test_registration: registered buffers and files, against a real temp file.
 *
 * Functions: aura_register_buffers, aura_register_files, aura_update_file, aura_unregister,
 * aura_request_unregister, aura_buf_fixed, aura_buf_fixed_idx, aura_read / aura_write with
 * registered buffers (READ_FIXED / WRITE_FIXED) and registered files (auto-detected and
 * AURA_FIXED_FILE). Includes double registration, unregister from inside a callback, and every
 * bad argument with its errno.
 */
#include "test_common.h"

#define SZ 8192

static aura_engine_t *E;
static int fd;
static char path[512];

static void buffers(void) {
    unsigned char *b0 = (unsigned char *)aura_buffer_alloc(E, SZ);
    unsigned char *b1 = (unsigned char *)aura_buffer_alloc(E, SZ);
    REQUIRE(b0 && b1);
    memset(b1, 0, SZ);
    struct iovec regs[2] = {{b0, SZ}, {b1, SZ}};
    t_rec r;
    t_rec_init(&r);

    /* Nothing registered yet. */
    CHECK_NULL_ERRNO(aura_read(E, fd, aura_buf_fixed(0, 0), 16, 0, 0, t_cb, &r), ENOENT);
    CHECK_FAIL_ERRNO(aura_unregister(E, AURA_REG_BUFFERS), ENOENT);
    CHECK_FAIL_ERRNO(aura_request_unregister(E, AURA_REG_BUFFERS), ENOENT);

    /* Bad arguments. */
    struct iovec bad_null = {NULL, SZ}, bad_zero = {b0, 0};
    CHECK_FAIL_ERRNO(aura_register_buffers(NULL, regs, 2), EINVAL);
    CHECK_FAIL_ERRNO(aura_register_buffers(E, NULL, 2), EINVAL);
    CHECK_FAIL_ERRNO(aura_register_buffers(E, regs, 0), EINVAL);
    CHECK_FAIL_ERRNO(aura_register_buffers(E, regs, 65536), EINVAL);
    CHECK_FAIL_ERRNO(aura_register_buffers(E, &bad_null, 1), EINVAL);
    CHECK_FAIL_ERRNO(aura_register_buffers(E, &bad_zero, 1), EINVAL);
    CHECK_FAIL_ERRNO(aura_unregister(NULL, AURA_REG_BUFFERS), EINVAL);
    CHECK_FAIL_ERRNO(aura_unregister(E, (aura_reg_type_t)7), EINVAL);
    CHECK_FAIL_ERRNO(aura_request_unregister(NULL, AURA_REG_BUFFERS), EINVAL);
    CHECK_FAIL_ERRNO(aura_request_unregister(E, (aura_reg_type_t)-1), EINVAL);

    CHECK_OK(aura_register_buffers(E, regs, 2));
    CHECK_FAIL_ERRNO(aura_register_buffers(E, regs, 2), EBUSY); /* double registration */

    /* WRITE_FIXED from b0 (pattern 6), READ_FIXED into b1 at an offset. */
    t_fill(b0, SZ, 6, 0);
    t_rec_init(&r);
    CHECK(aura_write(E, fd, aura_buf_fixed_idx(0), SZ, 0, 0, t_cb, &r) != NULL);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.result, SZ);
    CHECK_EQ(r.op, AURA_OP_WRITE_FIXED);
    unsigned char back[SZ];
    CHECK_EQ(pread(fd, back, SZ, 0), SZ);
    CHECK(t_matches(back, SZ, 6, 0));
    t_rec_init(&r);
    CHECK(aura_read(E, fd, aura_buf_fixed(1, 4096), 4096, 1000, 0, t_cb, &r) != NULL);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.result, 4096);
    CHECK_EQ(r.op, AURA_OP_READ_FIXED);
    CHECK(t_matches(b1 + 4096, 4096, 6, 1000));
    /* 7-argument shape with a registered buffer. */
    t_rec_init(&r);
    CHECK(aura_read(E, fd, aura_buf_fixed(1, 0), 100, 0, t_cb, &r) != NULL);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.result, 100);
    CHECK(t_matches(b1, 100, 6, 0));

    /* Outside the registered buffer: EOVERFLOW; an index not registered: ENOENT (aura.h). */
    CHECK_NULL_ERRNO(aura_read(E, fd, aura_buf_fixed(0, SZ - 10), 11, 0, 0, t_cb, &r), EOVERFLOW);
    CHECK_NULL_ERRNO(aura_read(E, fd, aura_buf_fixed(0, SZ + 1), 1, 0, 0, t_cb, &r), EOVERFLOW);
    CHECK_NULL_ERRNO(aura_write(E, fd, aura_buf_fixed(2, 0), 16, 0, 0, t_cb, &r), ENOENT);
    CHECK_NULL_ERRNO(aura_read(E, fd, aura_buf_fixed(-1, 0), 16, 0, 0, t_cb, &r), EINVAL);

    CHECK_OK(aura_unregister(E, AURA_REG_BUFFERS));
    CHECK_NULL_ERRNO(aura_read(E, fd, aura_buf_fixed(0, 0), 16, 0, 0, t_cb, &r), ENOENT);
    CHECK_FAIL_ERRNO(aura_unregister(E, AURA_REG_BUFFERS), ENOENT);
    /* Register again after unregistering works. */
    CHECK_OK(aura_register_buffers(E, regs, 1));
    CHECK_OK(aura_request_unregister(E, AURA_REG_BUFFERS)); /* nothing in flight: done now */
    CHECK_NULL_ERRNO(aura_read(E, fd, aura_buf_fixed(0, 0), 16, 0, 0, t_cb, &r), ENOENT);
    aura_buffer_free(E, b0);
    aura_buffer_free(E, b1);
}

/* Unregister from inside a callback: degrades to the deferred form. */
typedef struct {
    int calls;
    int unreg_rc, unreg_errno;
    int after_errno;
    ssize_t result;
} unreg_rec;

static void unregister_in_cb(aura_request_t *req, ssize_t result, void *ud) {
    unreg_rec *u = (unreg_rec *)ud;
    static char tmp[16];
    (void)req;
    u->calls++;
    u->result = result;
    errno = 0;
    u->unreg_rc = aura_unregister(E, AURA_REG_BUFFERS);
    u->unreg_errno = errno;
    /* While draining or after: registered-buffer submissions are refused. */
    errno = 0;
    if (aura_read(E, fd, aura_buf_fixed(0, 0), 16, 0, 0, NULL, NULL) == NULL)
        u->after_errno = errno;
    (void)tmp;
}

static void unregister_from_callback(void) {
    unsigned char *b = (unsigned char *)aura_buffer_alloc(E, SZ);
    REQUIRE(b != NULL);
    memset(b, 0, SZ);
    struct iovec reg = {b, SZ};
    CHECK_OK(aura_register_buffers(E, &reg, 1));
    unreg_rec u;
    memset(&u, 0, sizeof u);
    CHECK(aura_read(E, fd, aura_buf_fixed(0, 0), 512, 0, 0, unregister_in_cb, &u) != NULL);
    REQUIRE(t_wait_count(E, &u.calls, 1) == 0);
    CHECK_EQ(u.result, 512);
    CHECK(t_matches(b, 512, 6, 0));
    CHECK_EQ(u.unreg_rc, 0);
    CHECK(u.after_errno == EBUSY || u.after_errno == ENOENT);
    CHECK_EQ(aura_drain(E, 1000) >= 0, 1);
    t_rec r;
    t_rec_init(&r);
    CHECK_NULL_ERRNO(aura_read(E, fd, aura_buf_fixed(0, 0), 16, 0, 0, t_cb, &r), ENOENT);
    /* The buffer can be registered again: the deferred unregister finished. */
    CHECK_OK(aura_register_buffers(E, &reg, 1));
    CHECK_OK(aura_unregister(E, AURA_REG_BUFFERS));
    aura_buffer_free(E, b);
}

static void files(void) {
    char p2[512];
    int fd2 = t_tempfile(p2, sizeof p2, 8, 4096);
    int fds[2] = {fd, fd2};
    t_rec r;
    t_rec_init(&r);
    char buf[256] = {0};

    CHECK_FAIL_ERRNO(aura_update_file(E, 0, fd), ENOENT); /* nothing registered */
    CHECK_FAIL_ERRNO(aura_unregister(E, AURA_REG_FILES), ENOENT);
    CHECK_FAIL_ERRNO(aura_register_files(NULL, fds, 2), EINVAL);
    CHECK_FAIL_ERRNO(aura_register_files(E, NULL, 2), EINVAL);
    CHECK_FAIL_ERRNO(aura_register_files(E, fds, 0), EINVAL);
    CHECK_OK(aura_register_files(E, fds, 2));
    CHECK_FAIL_ERRNO(aura_register_files(E, fds, 2), EBUSY); /* double registration */

    /* A plain fd found in the table is used through it; the request still reports the fd. */
    t_rec_init(&r);
    CHECK(aura_read(E, fd2, aura_buf(buf), 256, 0, 0, t_cb, &r) != NULL);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.result, 256);
    CHECK(t_matches(buf, 256, 8, 0));
    CHECK_EQ(r.fd, fd2);
    /* AURA_FIXED_FILE: fd is the table index (1 = fd2). */
    memset(buf, 0, sizeof buf);
    t_rec_init(&r);
    CHECK(aura_read(E, 1, aura_buf(buf), 256, 100, AURA_FIXED_FILE, t_cb, &r) != NULL);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.result, 256);
    CHECK(t_matches(buf, 256, 8, 100));
    /* Also fsync and writev through the table. */
    t_rec_init(&r);
    CHECK(aura_fsync(E, 0, AURA_FSYNC_DATASYNC, AURA_FIXED_FILE, t_cb, &r) != NULL);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.result, 0);

    /* update_file: bad arguments, then swap slot 1 to fd, then clear it. */
    CHECK_FAIL_ERRNO(aura_update_file(NULL, 0, fd), EINVAL);
    CHECK_FAIL_ERRNO(aura_update_file(E, -1, fd), EINVAL);
    CHECK_FAIL_ERRNO(aura_update_file(E, 2, fd), EINVAL);
    CHECK_FAIL_ERRNO(aura_update_file(E, 0, -2), EINVAL);
    CHECK_OK(aura_update_file(E, 1, fd));
    memset(buf, 0, sizeof buf);
    t_rec_init(&r);
    CHECK(aura_read(E, 1, aura_buf(buf), 64, 0, AURA_FIXED_FILE, t_cb, &r) != NULL);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.result, 64);
    CHECK(t_matches(buf, 64, 6, 0)); /* fd now holds pattern 6 at 0 (written above) */
    CHECK_OK(aura_update_file(E, 1, -1));
    t_rec_init(&r);
    if (aura_read(E, 1, aura_buf(buf), 64, 0, AURA_FIXED_FILE, t_cb, &r) != NULL) {
        REQUIRE(t_wait_rec(E, &r) == 0);
        CHECK_EQ(r.result, -EBADF); /* an empty slot */
    } else {
        CHECK(errno == EBADF || errno == EINVAL);
    }

    CHECK_OK(aura_unregister(E, AURA_REG_FILES));
    CHECK_FAIL_ERRNO(aura_unregister(E, AURA_REG_FILES), ENOENT);
    CHECK_FAIL_ERRNO(aura_update_file(E, 0, fd), ENOENT);
    /* Deferred unregister of files with nothing in flight completes at once. */
    CHECK_OK(aura_register_files(E, fds, 1));
    CHECK_OK(aura_request_unregister(E, AURA_REG_FILES));
    CHECK_EQ(aura_drain(E, 1000) >= 0, 1);
    CHECK_FAIL_ERRNO(aura_unregister(E, AURA_REG_FILES), ENOENT);
    /* Plain reads keep working without the table. */
    t_rec_init(&r);
    CHECK(aura_read(E, fd2, aura_buf(buf), 16, 0, 0, t_cb, &r) != NULL);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.result, 16);
    close(fd2);
    unlink(p2);
}

int main(void) {
    t_name = "test_registration";
    E = t_engine();
    fd = t_tempfile(path, sizeof path, 1, SZ * 2);
    buffers();
    unregister_from_callback();
    files();
    /* Destroy with both kinds registered: destroy unregisters them. */
    unsigned char *b = (unsigned char *)aura_buffer_alloc(E, 4096);
    REQUIRE(b != NULL);
    struct iovec reg = {b, 4096};
    CHECK_OK(aura_register_buffers(E, &reg, 1));
    CHECK_OK(aura_register_files(E, &fd, 1));
    aura_destroy(E);
    close(fd);
    unlink(path);
    return t_finish();
}
