/* registered_buffers: register two buffers with the kernel, then write and read through them
 * by index (aura_buf_fixed), skipping the per-operation page mapping.
 *
 *   registered_buffers FILE
 *
 * FILE is created (or truncated).
 */
#define _GNU_SOURCE
#include <aura.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define PENDING (-1000000)
#define SIZE 8192

static void on_done(aura_request_t *req, ssize_t result, void *ud) {
    (void)req;
    *(ssize_t *)ud = result;
}

static ssize_t wait_result(aura_engine_t *engine, ssize_t *result) {
    while (*result == PENDING)
        if (aura_wait(engine, 1000) < 0 && errno != ETIMEDOUT) return -errno;
    return *result;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE\n", argv[0]);
        return 2;
    }
    int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        fprintf(stderr, "open %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    aura_engine_t *engine = aura_create();
    if (!engine) return 1;
    unsigned char *out = aura_buffer_alloc(engine, SIZE);
    unsigned char *in = aura_buffer_alloc(engine, SIZE);
    if (!out || !in) return 1;
    for (int i = 0; i < SIZE; i++) out[i] = (unsigned char)(i * 7 + 3);
    memset(in, 0, SIZE);

    struct iovec regs[2] = {{out, SIZE}, {in, SIZE}};
    if (aura_register_buffers(engine, regs, 2) != 0) {
        /* Registration pins memory: a low RLIMIT_MEMLOCK refuses it. */
        fprintf(stderr, "aura_register_buffers: %s\n", strerror(errno));
        return 1;
    }

    /* Write buffer 0 (in two halves, the second through an offset into it). */
    ssize_t r1 = PENDING, r2 = PENDING;
    if (!aura_write(engine, fd, aura_buf_fixed_idx(0), SIZE / 2, 0, AURA_NO_FLAGS, on_done,
                    &r1) ||
        !aura_write(engine, fd, aura_buf_fixed(0, SIZE / 2), SIZE / 2, SIZE / 2, AURA_NO_FLAGS,
                    on_done, &r2)) {
        fprintf(stderr, "fixed write: %s\n", strerror(errno));
        return 1;
    }
    if (wait_result(engine, &r1) != SIZE / 2 || wait_result(engine, &r2) != SIZE / 2) {
        fprintf(stderr, "fixed writes returned %zd and %zd\n", r1, r2);
        return 1;
    }
    /* Read it back into buffer 1. */
    ssize_t r3 = PENDING;
    if (!aura_read(engine, fd, aura_buf_fixed(1, 0), SIZE, 0, AURA_NO_FLAGS, on_done, &r3)) {
        fprintf(stderr, "fixed read: %s\n", strerror(errno));
        return 1;
    }
    if (wait_result(engine, &r3) != SIZE || memcmp(in, out, SIZE) != 0) {
        fprintf(stderr, "fixed read returned %zd or different data\n", r3);
        return 1;
    }
    printf("wrote %d and read %d bytes through registered buffers: identical\n", SIZE, SIZE);

    if (aura_unregister(engine, AURA_REG_BUFFERS) != 0) {
        fprintf(stderr, "aura_unregister: %s\n", strerror(errno));
        return 1;
    }
    /* With nothing registered, a fixed-buffer submission is refused. */
    if (aura_read(engine, fd, aura_buf_fixed(1, 0), SIZE, 0, AURA_NO_FLAGS, on_done, &r3) ||
        errno != ENOENT) {
        fprintf(stderr, "fixed read after unregister was not refused with ENOENT\n");
        return 1;
    }
    printf("after unregister: fixed read refused (ENOENT)\n");
    aura_buffer_free(engine, out);
    aura_buffer_free(engine, in);
    aura_destroy(engine);
    close(fd);
    return 0;
}
