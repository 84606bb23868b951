/* bulk_reader: read many files at once, in 64 KiB chunks, keeping up to 64 reads in flight.
 *
 *   bulk_reader FILE...
 *
 * Prints one line per file ("<bytes> <path>") and a total. Each read's callback submits the
 * next chunk of its file, so the engine always has work while the AIMD controller tunes depth.
 */
#define _GNU_SOURCE
#include <aura.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (64 * 1024)
#define SLOTS 64

struct file_state {
    const char *path;
    int fd;
    off_t next;        /* next offset to submit */
    long long bytes;   /* bytes read so far */
    int in_flight;
    int eof;
    int error;         /* errno of the first failure */
};

struct slot {
    struct file_state *file;
    void *buf;
    off_t off;
    int busy;
};

static aura_engine_t *engine;
static struct slot slots[SLOTS];
static int active_reads;
static struct file_state *files;
static int nfiles;

/* A file with more to read and fewer than 8 reads in flight, or NULL. */
static struct file_state *pick_file(void) {
    for (int i = 0; i < nfiles; i++) {
        struct file_state *f = &files[i];
        if (f->fd >= 0 && !f->eof && !f->error && f->in_flight < 8) return f;
    }
    return NULL;
}

static void on_chunk(aura_request_t *req, ssize_t result, void *ud);

static int submit_chunk(struct slot *s, struct file_state *f) {
    s->file = f;
    s->off = f->next;
    s->busy = 1;
    if (!aura_read(engine, f->fd, aura_buf(s->buf), CHUNK, s->off, on_chunk, s)) {
        f->error = errno;
        s->busy = 0;
        return -1;
    }
    f->next += CHUNK;
    f->in_flight++;
    active_reads++;
    return 0;
}

static void on_chunk(aura_request_t *req, ssize_t result, void *ud) {
    struct slot *s = ud;
    struct file_state *f = s->file;
    (void)req;
    s->busy = 0;
    f->in_flight--;
    active_reads--;
    if (result < 0) {
        if (!f->error) f->error = (int)-result;
    } else {
        f->bytes += result;
        if (result < CHUNK) f->eof = 1;
    }
    /* Keep this slot busy: on the same file while it has more to read, else on another. */
    if (f->eof || f->error) f = pick_file();
    if (f) submit_chunk(s, f);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE...\n", argv[0]);
        return 2;
    }
    nfiles = argc - 1;
    files = calloc((size_t)nfiles, sizeof *files);
    if (!files) return 1;
    engine = aura_create();
    if (!engine) {
        fprintf(stderr, "aura_create: %s\n", strerror(errno));
        return 1;
    }
    for (int i = 0; i < nfiles; i++) {
        files[i].path = argv[i + 1];
        files[i].fd = open(argv[i + 1], O_RDONLY);
        if (files[i].fd < 0) files[i].error = errno;
    }
    for (int i = 0; i < SLOTS; i++) {
        slots[i].buf = aura_buffer_alloc(engine, CHUNK);
        if (!slots[i].buf) {
            fprintf(stderr, "aura_buffer_alloc: %s\n", strerror(errno));
            return 1;
        }
    }
    /* Start every slot on some file (up to 8 reads in flight per file). */
    for (int i = 0; i < SLOTS; i++) {
        struct file_state *f = pick_file();
        if (!f) break;
        submit_chunk(&slots[i], f);
    }
    while (active_reads > 0) {
        if (aura_wait(engine, 1000) < 0 && errno != ETIMEDOUT) {
            fprintf(stderr, "aura_wait: %s\n", strerror(errno));
            return 1;
        }
    }
    long long total = 0;
    int failed = 0;
    for (int i = 0; i < nfiles; i++) {
        if (files[i].error) {
            fprintf(stderr, "%s: %s\n", files[i].path, strerror(files[i].error));
            failed = 1;
        } else {
            printf("%lld %s\n", files[i].bytes, files[i].path);
            total += files[i].bytes;
        }
        if (files[i].fd >= 0) close(files[i].fd);
    }
    printf("total %lld bytes in %d files\n", total, nfiles);
    for (int i = 0; i < SLOTS; i++) aura_buffer_free(engine, slots[i].buf);
    aura_destroy(engine);
    free(files);
    return failed;
}
