/* vectored_io: one aura_writev from three buffers, one aura_readv back into three others.
 *
 *   vectored_io FILE
 *
 * FILE is created (or truncated). The data read back is compared with what was written.
 */
#define _GNU_SOURCE
#include <aura.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static void on_done(aura_request_t *req, ssize_t result, void *ud) {
    (void)req;
    *(ssize_t *)ud = result;
}

/* Submits nothing; waits until *result is no longer the "pending" marker. */
static int wait_for(aura_engine_t *engine, const ssize_t *result) {
    while (*result == -1000000)
        if (aura_wait(engine, 1000) < 0 && errno != ETIMEDOUT) return -1;
    return 0;
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

    char header[16] = "HEADER:vectored";
    char body[4000];
    char trailer[] = ":TRAILER";
    for (size_t i = 0; i < sizeof body; i++) body[i] = (char)('a' + i % 26);
    struct iovec out[3] = {
        {header, sizeof header}, {body, sizeof body}, {trailer, sizeof trailer}};
    size_t total = sizeof header + sizeof body + sizeof trailer;

    ssize_t wres = -1000000;
    if (!aura_writev(engine, fd, out, 3, 0, AURA_NO_FLAGS, on_done, &wres)) {
        fprintf(stderr, "aura_writev: %s\n", strerror(errno));
        return 1;
    }
    if (wait_for(engine, &wres) != 0 || wres != (ssize_t)total) {
        fprintf(stderr, "writev result %zd, expected %zu\n", wres, total);
        return 1;
    }

    /* Read back split differently: 100 + 3000 + the rest. */
    char a[100], b[3000], c[sizeof header + sizeof body + sizeof trailer - 3100];
    struct iovec in[3] = {{a, sizeof a}, {b, sizeof b}, {c, sizeof c}};
    ssize_t rres = -1000000;
    if (!aura_readv(engine, fd, in, 3, 0, AURA_NO_FLAGS, on_done, &rres)) {
        fprintf(stderr, "aura_readv: %s\n", strerror(errno));
        return 1;
    }
    if (wait_for(engine, &rres) != 0 || rres != (ssize_t)total) {
        fprintf(stderr, "readv result %zd, expected %zu\n", rres, total);
        return 1;
    }
    char expect[sizeof header + sizeof body + sizeof trailer];
    memcpy(expect, header, sizeof header);
    memcpy(expect + sizeof header, body, sizeof body);
    memcpy(expect + sizeof header + sizeof body, trailer, sizeof trailer);
    char got[sizeof expect];
    memcpy(got, a, sizeof a);
    memcpy(got + sizeof a, b, sizeof b);
    memcpy(got + sizeof a + sizeof b, c, sizeof c);
    if (memcmp(expect, got, sizeof expect) != 0) {
        fprintf(stderr, "data read back differs from data written\n");
        return 1;
    }
    printf("writev %zd bytes from 3 buffers, readv %zd bytes into 3 buffers: identical\n", wres,
           rres);
    aura_destroy(engine);
    close(fd);
    return 0;
}
