/* test_metadata: openat, close, statx, fallocate, ftruncate and sync_file_range on real files,
 * results checked with the plain syscalls, and their bad arguments.
 *
 * Functions: aura_openat, aura_close, aura_statx, aura_fallocate, aura_ftruncate,
 * aura_sync_file_range (both call shapes).
 */
#include "test_common.h"

static aura_engine_t *E;

int main(void) {
    t_name = "test_metadata";
    E = t_engine();
    char path[512];
    int fd = t_tempfile(path, sizeof path, 1, 10000);
    t_rec r;
    struct statx sx;
    memset(&sx, 0, sizeof sx);

    /* Bad arguments. */
    CHECK_NULL_ERRNO(aura_openat(NULL, AT_FDCWD, path, O_RDONLY, 0, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_openat(E, AT_FDCWD, NULL, O_RDONLY, 0, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_openat(E, AT_FDCWD, path, O_RDONLY, 0, AURA_FIXED_FILE, t_cb, &r),
                     EINVAL);
    CHECK_NULL_ERRNO(aura_close(NULL, fd, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_close(E, -1, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_close(E, fd, AURA_FIXED_FILE, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_statx(NULL, AT_FDCWD, path, 0, AURA_STATX_SIZE, &sx, 0, t_cb, &r),
                     EINVAL);
    CHECK_NULL_ERRNO(aura_statx(E, AT_FDCWD, NULL, 0, AURA_STATX_SIZE, &sx, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_statx(E, AT_FDCWD, path, 0, AURA_STATX_SIZE, NULL, 0, t_cb, &r),
                     EINVAL);
    CHECK_NULL_ERRNO(aura_statx(E, AT_FDCWD, path, 0, AURA_STATX_SIZE, &sx, 1, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_fallocate(NULL, fd, 0, 0, 4096, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_fallocate(E, -1, 0, 0, 4096, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_fallocate(E, fd, 0, -1, 4096, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_fallocate(E, fd, 0, 0, 0, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_fallocate(E, fd, 0, 0, -5, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_fallocate(E, fd, 0, 0, 4096, 0x100, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_ftruncate(NULL, fd, 100, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_ftruncate(E, -1, 100, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_ftruncate(E, fd, -1, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_ftruncate(E, fd, 100, 0x8, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_sync_file_range(NULL, fd, 0, 0, 0, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_sync_file_range(E, -1, 0, 0, 0, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_sync_file_range(E, fd, -1, 0, 0, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_sync_file_range(E, fd, 0, -1, 0, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_sync_file_range(E, fd, 0, (off_t)UINT_MAX + 1, 0, 0, t_cb, &r), EINVAL);
    CHECK_NULL_ERRNO(aura_sync_file_range(E, fd, 0, 0, 8, 0, t_cb, &r), EINVAL);
    CHECK_EQ(aura_pending_count(E), 0);

    /* openat: a new file, then open the test file read-only and read from the new fd. */
    char newpath[600];
    snprintf(newpath, sizeof newpath, "%s.new", path);
    t_rec_init(&r);
    CHECK(aura_openat(E, AT_FDCWD, newpath, O_RDWR | O_CREAT | O_EXCL, 0600, 0, t_cb, &r) != NULL);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK(r.result >= 0);
    CHECK_EQ(r.op, AURA_OP_OPENAT);
    int nfd = (int)r.result;
    struct stat st;
    CHECK(stat(newpath, &st) == 0 && (st.st_mode & 0777) == 0600);
    /* O_EXCL on an existing file: -EEXIST in the callback. */
    t_rec_init(&r);
    CHECK(aura_openat(E, AT_FDCWD, newpath, O_RDWR | O_CREAT | O_EXCL, 0600, t_cb, &r) != NULL);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.result, -EEXIST);
    t_rec_init(&r);
    CHECK(aura_openat(E, AT_FDCWD, "/nonexistent/aura/x", O_RDONLY, 0, 0, t_cb, &r) != NULL);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.result, -ENOENT);

    /* fallocate: grow the new file to 64 KiB; KEEP_SIZE beyond; punch a hole in the test file. */
    t_rec_init(&r);
    CHECK(aura_fallocate(E, nfd, AURA_FALLOC_DEFAULT, 0, 65536, 0, t_cb, &r) != NULL);
    REQUIRE(t_wait_rec(E, &r) == 0);
    if (r.result == -EOPNOTSUPP) {
        printf("note: fallocate not supported by this filesystem\n");
    } else {
        CHECK_EQ(r.result, 0);
        CHECK_EQ(r.op, AURA_OP_FALLOCATE);
        CHECK(fstat(nfd, &st) == 0 && st.st_size == 65536);
        t_rec_init(&r);
        CHECK(aura_fallocate(E, nfd, AURA_FALLOC_KEEP_SIZE, 65536, 65536, t_cb, &r) != NULL);
        REQUIRE(t_wait_rec(E, &r) == 0);
        CHECK_EQ(r.result, 0);
        CHECK(fstat(nfd, &st) == 0 && st.st_size == 65536);
        t_rec_init(&r);
        CHECK(aura_fallocate(E, fd, AURA_FALLOC_PUNCH_HOLE | AURA_FALLOC_KEEP_SIZE, 0, 4096, 0,
                             t_cb, &r) != NULL);
        REQUIRE(t_wait_rec(E, &r) == 0);
        if (r.result == 0) {
            unsigned char hole[4096];
            CHECK_EQ(pread(fd, hole, 4096, 0), 4096);
            int zero = 1;
            for (int i = 0; i < 4096; i++) zero &= hole[i] == 0;
            CHECK(zero);
            CHECK(fstat(fd, &st) == 0 && st.st_size == 10000);
        } else {
            CHECK_EQ(r.result, -EOPNOTSUPP);
        }
    }

    /* ftruncate (kernel 6.9+; older kernels complete with -EINVAL). */
    t_rec_init(&r);
    CHECK(aura_ftruncate(E, nfd, 12345, 0, t_cb, &r) != NULL);
    REQUIRE(t_wait_rec(E, &r) == 0);
    if (r.result == -EINVAL || r.result == -EOPNOTSUPP) {
        printf("note: this kernel has no IORING_OP_FTRUNCATE (result %zd)\n", r.result);
    } else {
        CHECK_EQ(r.result, 0);
        CHECK_EQ(r.op, AURA_OP_FTRUNCATE);
        CHECK(fstat(nfd, &st) == 0 && st.st_size == 12345);
        t_rec_init(&r);
        CHECK(aura_ftruncate(E, nfd, 0, t_cb, &r) != NULL);
        REQUIRE(t_wait_rec(E, &r) == 0);
        CHECK_EQ(r.result, 0);
        CHECK(fstat(nfd, &st) == 0 && st.st_size == 0);
    }

    /* sync_file_range on written data, whole file (nbytes 0) and a range. */
    t_rec_init(&r);
    CHECK(aura_sync_file_range(E, fd, 0, 0, AURA_SYNC_RANGE_WRITE, 0, t_cb, &r) != NULL);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.result, 0);
    CHECK_EQ(r.op, AURA_OP_SYNC_FILE_RANGE);
    t_rec_init(&r);
    CHECK(aura_sync_file_range(E, fd, 4096, 4096,
                               AURA_SYNC_RANGE_WAIT_BEFORE | AURA_SYNC_RANGE_WRITE |
                                   AURA_SYNC_RANGE_WAIT_AFTER,
                               t_cb, &r) != NULL);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.result, 0);

    /* statx: by path, and by fd with AT_EMPTY_PATH. */
    t_rec_init(&r);
    memset(&sx, 0, sizeof sx);
    CHECK(aura_statx(E, AT_FDCWD, path, 0, AURA_STATX_SIZE | AURA_STATX_MODE, &sx, 0, t_cb, &r) !=
          NULL);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.result, 0);
    CHECK_EQ(r.op, AURA_OP_STATX);
    CHECK(sx.stx_mask & STATX_SIZE);
    CHECK_EQ(sx.stx_size, 10000);
    CHECK(S_ISREG(sx.stx_mode));
    t_rec_init(&r);
    memset(&sx, 0, sizeof sx);
    CHECK(aura_statx(E, fd, "", AURA_AT_EMPTY_PATH, AURA_STATX_ALL, &sx, t_cb, &r) != NULL);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.result, 0);
    CHECK_EQ(sx.stx_size, 10000);
    CHECK(fstat(fd, &st) == 0 && sx.stx_ino == st.st_ino);
    t_rec_init(&r);
    CHECK(aura_statx(E, AT_FDCWD, "/nonexistent/aura/x", 0, AURA_STATX_SIZE, &sx, 0, t_cb, &r) !=
          NULL);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.result, -ENOENT);

    /* close: the fd from openat, then closing it again gives -EBADF. */
    t_rec_init(&r);
    CHECK(aura_close(E, nfd, 0, t_cb, &r) != NULL);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.result, 0);
    CHECK_EQ(r.op, AURA_OP_CLOSE);
    CHECK(fcntl(nfd, F_GETFD) == -1 && errno == EBADF);
    t_rec_init(&r);
    CHECK(aura_close(E, nfd, t_cb, &r) != NULL);
    REQUIRE(t_wait_rec(E, &r) == 0);
    CHECK_EQ(r.result, -EBADF);

    aura_destroy(E);
    unlink(newpath);
    close(fd);
    unlink(path);
    return t_finish();
}
