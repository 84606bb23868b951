// test_cpp: the C++20 binding (aura.hpp) against real temp files: RAII, every callback op,
// every co_await op, errors, Task<T>, registration, stats, logging.
#include <aura.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

static int checks, failures;
#define CHECK(c)                                                                              \
    do {                                                                                      \
        if (c) checks++;                                                                      \
        else {                                                                                \
            std::fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #c);              \
            failures++;                                                                       \
        }                                                                                     \
    } while (0)
// `stmt` must throw aura::Error with errno `err`.
#define CHECK_THROWS(stmt, err)                                                               \
    do {                                                                                      \
        try {                                                                                 \
            stmt;                                                                             \
            std::fprintf(stderr, "%s:%d: FAILED: no exception from %s\n", __FILE__, __LINE__, \
                         #stmt);                                                              \
            failures++;                                                                       \
        } catch (const aura::Error &e_) {                                                     \
            if (e_.errno_value() == (err)) checks++;                                          \
            else {                                                                            \
                std::fprintf(stderr, "%s:%d: FAILED: %s threw %s\n", __FILE__, __LINE__,      \
                             #stmt, e_.what());                                               \
                failures++;                                                                   \
            }                                                                                 \
        }                                                                                     \
    } while (0)

static unsigned char pat(size_t i) { return static_cast<unsigned char>(i * 31 + 7 + (i >> 8)); }

struct TempFile {
    std::string path;
    int fd;
    explicit TempFile(size_t len) {
        const char *d = std::getenv("TMPDIR");
        path = std::string(d && *d ? d : "/tmp") + "/aura-cpptest-XXXXXX";
        fd = mkstemp(path.data());
        std::vector<unsigned char> v(len);
        for (size_t i = 0; i < len; i++) v[i] = pat(i);
        if (fd < 0 || (len && pwrite(fd, v.data(), len, 0) != static_cast<ssize_t>(len)))
            std::abort();
    }
    ~TempFile() {
        close(fd);
        unlink(path.c_str());
    }
};

static bool matches(const void *p, size_t len, size_t base) {
    auto *b = static_cast<const unsigned char *>(p);
    for (size_t i = 0; i < len; i++)
        if (b[i] != pat(base + i)) return false;
    return true;
}

static void basics(aura::Engine &engine, TempFile &f) {
    CHECK(engine.handle() != nullptr);
    CHECK(aura::version() == "0.6.0" && aura::version_int() == 600);
    CHECK_THROWS(aura::Engine(aura::Options().queue_depth(3)), EINVAL);
    CHECK_THROWS(aura::Engine(aura::Options().ring_count(5000)), EINVAL);
    aura::Options o = aura::Options().queue_depth(64).ring_count(1).ring_select(
        aura::RingSelect::RoundRobin).single_thread(true);
    CHECK(o.queue_depth() == 64 && o.ring_select() == aura::RingSelect::RoundRobin &&
          o.single_thread());
    aura::Engine small(o);
    CHECK(small.ring_count() == 1);
    aura::Engine moved = std::move(small);
    CHECK(moved.handle() != nullptr && small.handle() == nullptr);
    CHECK_THROWS(small.poll(), EINVAL);

    // Buffers.
    CHECK_THROWS((void)engine.allocate_buffer(0), EINVAL);
    aura::Buffer b = engine.allocate_buffer(8192);
    CHECK(b && b.size() == 8192 && b.owned() && b.span().size() == 8192);
    CHECK(reinterpret_cast<uintptr_t>(b.data()) % 4096 == 0);
    aura::Buffer b2 = std::move(b);
    CHECK(!b && b2.as<char>() != nullptr);
    void *raw = b2.release();
    CHECK(!b2 && raw != nullptr);
    aura_buffer_free(engine.handle(), raw);
    char local[16];
    aura::Buffer w = aura::Buffer::wrap(local, sizeof local);
    CHECK(!w.owned() && w.data() == local);
    aura::BufferRef fx = aura::BufferRef::fixed(2, 64);
    CHECK(fx.is_registered() && fx.fixed_index() == 2 && fx.fixed_offset() == 64 && !fx.data());
    aura::BufferRef pr(local);
    CHECK(!pr.is_registered() && pr.data() == local);

    // Callback ops with data checks.
    auto buf = engine.allocate_buffer(4096);
    std::memset(buf.data(), 0, 4096);
    ssize_t got = -1;
    int calls = 0;
    aura::Request req = engine.read(f.fd, buf, 4096, 100, [&](aura::Request &r, ssize_t n) {
        got = n;
        calls++;
        CHECK(r.fd() == f.fd && r.op_type() == AURA_OP_READ && !r.pending());
        CHECK(aura::in_callback_context());
        CHECK_THROWS(engine.wait(0), EDEADLK);
    });
    CHECK(req.handle() != nullptr);
    engine.drain();
    CHECK(calls == 1 && got == 4096 && matches(buf.data(), 4096, 100));
    CHECK_THROWS(engine.read(-1, buf, 16, 0, [](aura::Request &, ssize_t) {}), EINVAL);
    CHECK_THROWS(engine.read(f.fd, buf, 0, 0, [](aura::Request &, ssize_t) {}), EINVAL);

    TempFile out(0);
    std::string a = "alpha-", c = "-omega";
    std::array<iovec, 2> v{{{a.data(), a.size()}, {c.data(), c.size()}}};
    ssize_t wv = 0, wr = 0, rv = 0, fs = -1, fds = -1, sfr = -1, fa = -1, ft = -1;
    engine.writev(out.fd, v, 0, [&](auto &, ssize_t n) { wv = n; });
    engine.drain();
    engine.write(out.fd, "XYZ", 3, 12, [&](auto &, ssize_t n) { wr = n; });
    engine.drain();
    char r1[8] = {0}, r2[7] = {0};
    std::array<iovec, 2> rvv{{{r1, 8}, {r2, 7}}};
    engine.readv(out.fd, rvv, 0, [&](auto &, ssize_t n) { rv = n; });
    engine.fsync(out.fd, [&](auto &, ssize_t n) { fs = n; });
    engine.fdatasync(out.fd, [&](auto &, ssize_t n) { fds = n; });
    engine.sync_file_range(out.fd, 0, 0, AURA_SYNC_RANGE_WRITE, [&](auto &, ssize_t n) { sfr = n; });
    engine.drain();
    CHECK(wv == 12 && wr == 3 && rv == 15 && fs == 0 && fds == 0 && sfr == 0);
    CHECK(std::string(r1, 8) + std::string(r2, 7) == "alpha--omegaXYZ");
    engine.fallocate(out.fd, 0, 0, 65536, [&](auto &, ssize_t n) { fa = n; });
    engine.drain();
    engine.ftruncate(out.fd, 100, [&](auto &, ssize_t n) { ft = n; });
    engine.drain();
    struct stat st {};
    fstat(out.fd, &st);
    CHECK((fa == 0 || fa == -EOPNOTSUPP) && ft == 0 && st.st_size == 100);
    struct statx sx {};
    ssize_t sxr = -1, ofd = -1, cl = -1;
    engine.statx(AT_FDCWD, f.path.c_str(), 0, AURA_STATX_SIZE, &sx, [&](auto &, ssize_t n) { sxr = n; });
    engine.openat(AT_FDCWD, f.path.c_str(), O_RDONLY, 0, [&](auto &, ssize_t n) { ofd = n; });
    engine.drain();
    CHECK(sxr == 0 && sx.stx_size == 65536 && ofd >= 0);
    engine.close(static_cast<int>(ofd), [&](auto &, ssize_t n) { cl = n; });
    engine.drain();
    CHECK(cl == 0);
}

static aura::Task<int> open_and_read(aura::Engine &e, const std::string &path, aura::Buffer &b) {
    int fd = co_await e.async_openat(AT_FDCWD, path.c_str(), O_RDONLY, 0);
    ssize_t n = co_await e.async_read(fd, b, 1000, 5);
    co_await e.async_close(fd);
    co_return static_cast<int>(n);
}

static aura::Task<std::string> coroutines(aura::Engine &e, TempFile &f) {
    auto b = e.allocate_buffer(4096);
    std::memset(b.data(), 0, 4096);
    int n = co_await open_and_read(e, f.path, b); // nested task
    CHECK(n == 1000 && matches(b.data(), 1000, 5));
    TempFile out(0);
    std::string s = "coroutine data";
    ssize_t w = co_await e.async_write(out.fd, s.data(), s.size(), 0);
    CHECK(w == static_cast<ssize_t>(s.size()));
    co_await e.async_fsync(out.fd);
    co_await e.async_fdatasync(out.fd);
    co_await e.async_sync_file_range(out.fd, 0, 0, AURA_SYNC_RANGE_WRITE);
    co_await e.async_ftruncate(out.fd, 4);
    char back[8] = {0};
    std::array<iovec, 1> iv{{{back, sizeof back}}};
    ssize_t r = co_await e.async_readv(out.fd, iv, 0);
    CHECK(r == 4 && std::string(back, 4) == "coro");
    std::array<const iovec, 1> wv{{{s.data(), 3}}};
    CHECK(co_await e.async_writev(out.fd, wv, 10) == 3);
    struct statx sx {};
    co_await e.async_statx(out.fd, "", AURA_AT_EMPTY_PATH, AURA_STATX_SIZE, &sx);
    CHECK(sx.stx_size == 13);
    try {
        co_await e.async_fallocate(out.fd, 0, 0, 8192);
    } catch (const aura::Error &err) {
        CHECK(err.errno_value() == EOPNOTSUPP);
    }
    // Errors: refused submission and failed operation both throw at the co_await.
    try {
        co_await e.async_read(-1, b, 16, 0);
        CHECK(false);
    } catch (const aura::Error &err) {
        CHECK(err.is_invalid());
    }
    try {
        co_await e.async_openat(AT_FDCWD, "/nonexistent/aura", O_RDONLY, 0);
        CHECK(false);
    } catch (const aura::Error &err) {
        CHECK(err.errno_value() == ENOENT);
    }
    co_return "done";
}

static aura::Task<void> throws_after_io(aura::Engine &e, int fd) {
    char b[4] = {0};
    co_await e.async_read(fd, b, sizeof b, 0);
    throw std::runtime_error("from the task");
}

static void tasks(aura::Engine &engine, TempFile &f) {
    CHECK(aura::sync_wait(engine, coroutines(engine, f)) == "done");
    auto t = throws_after_io(engine, f.fd);
    CHECK(!t.done());
    bool logic = false;
    try {
        (void)t.get(); // not finished yet
    } catch (const std::logic_error &) {
        logic = true;
    }
    CHECK(logic);
    t.resume();
    while (!t.done()) engine.wait(1000);
    bool rethrown = false;
    try {
        t.get();
    } catch (const std::runtime_error &e) {
        rethrown = std::string(e.what()) == "from the task";
    }
    CHECK(rethrown);
}

static void callback_exception(aura::Engine &engine, TempFile &f) {
    char b[8] = {0};
    engine.read(f.fd, b, sizeof b, 0, [](aura::Request &, ssize_t) {
        throw std::runtime_error("boom");
    });
    bool caught = false;
    try {
        engine.drain();
    } catch (const std::runtime_error &e) {
        caught = std::string(e.what()) == "boom";
    }
    CHECK(caught);
    CHECK(engine.pending_count() == 0);
}

static void cancel_and_loop(aura::Engine &engine) {
    int p[2];
    CHECK(pipe(p) == 0);
    char b[8] = {0};
    ssize_t res = 0;
    bool again = true;
    aura::Request r = engine.read(p[0], b, sizeof b, 0, [&](aura::Request &q, ssize_t n) {
        res = n;
        again = engine.cancel(q);
    });
    engine.flush();
    CHECK(engine.wait(20) == 0); // timed out: 0
    CHECK(r.pending());
    CHECK_THROWS(r.set_linked(), EINVAL);
    CHECK(engine.cancel(r));
    engine.drain(5000);
    CHECK(res == -ECANCELED && !again);
    // Drain timeout throws; run/stop from a callback.
    engine.read(p[0], b, 4, 0, [&](aura::Request &, ssize_t n) { res = n; });
    CHECK_THROWS(engine.drain(20), ETIMEDOUT);
    CHECK(::write(p[1], "1234", 4) == 4);
    engine.drain();
    CHECK(res == 4 && std::memcmp(b, "1234", 4) == 0);
    CHECK(::write(p[1], "5", 1) == 1);
    engine.read(p[0], b, 1, 0, [&](aura::Request &, ssize_t) { engine.stop(); });
    engine.run();
    CHECK(b[0] == '5');
    CHECK(engine.poll_fd() >= 0 && engine.poll() == 0);
    close(p[0]);
    close(p[1]);
}

static void registration_stats_log(aura::Engine &engine, TempFile &f) {
    auto b = engine.allocate_buffer(4096);
    std::memset(b.data(), 0, 4096);
    std::array<iovec, 1> regs{{{b.data(), 4096}}};
    engine.register_buffers(regs);
    CHECK_THROWS(engine.register_buffers(regs), EBUSY);
    ssize_t n = 0;
    engine.read(f.fd, aura::BufferRef::fixed(0), 4096, 0, [&](auto &, ssize_t k) { n = k; });
    engine.drain();
    CHECK(n == 4096 && matches(b.data(), 4096, 0));
    engine.unregister_buffers();
    CHECK_THROWS(engine.unregister_buffers(), ENOENT);
    std::array<int, 1> fds{{f.fd}};
    engine.register_files(fds);
    engine.update_file(0, f.fd);
    CHECK_THROWS(engine.update_file(5, f.fd), EINVAL);
    engine.request_unregister_files();
    engine.drain();

    auto st = engine.stats();
    CHECK(st.ops_completed() > 0 && st.current_in_flight() == 0);
    CHECK(engine.ring_stats(0).queue_depth() > 0);
    CHECK(!engine.ring_stats(0).aimd_phase_name().empty());
    CHECK_THROWS((void)engine.ring_stats(engine.ring_count()), EINVAL);
    auto h = engine.histogram(0);
    CHECK(h.max_tracked_us() == AURA_HISTOGRAM_MAX_US);
    CHECK(!h.percentile(101.0).has_value());
    CHECK(engine.buffer_stats().shard_count() >= 1);
    std::string m = engine.metrics_prometheus();
    CHECK(m.find("aura_ops_completed_total") != std::string::npos);
    engine.set_max_p99_latency(3.0);
    engine.set_min_in_flight(4);
    engine.set_batch_threshold(-1);
    CHECK_THROWS(engine.set_batch_threshold(-7), EINVAL);
    CHECK(!engine.fatal_error().has_value());

    std::vector<std::string> msgs;
    aura::set_log_handler([&](aura::LogLevel l, std::string_view s) {
        if (l == aura::LogLevel::Notice) msgs.emplace_back(s);
    });
    aura::log_emit(aura::LogLevel::Notice, "cpp log");
    aura::set_log_handler(nullptr);
    aura::log_emit(aura::LogLevel::Notice, "dropped");
    CHECK(msgs.size() == 1 && msgs[0] == "cpp log");
}

// A Task destroyed while its I/O is in flight aborts (in a child process).
static void task_abort_child() {
    pid_t pid = fork();
    if (pid == 0) {
        aura::Engine e;
        int p[2];
        if (pipe(p) != 0) _exit(3);
        auto body = [&]() -> aura::Task<void> {
            char b[4] = {0};
            co_await e.async_read(p[0], b, sizeof b, 0);
        };
        {
            auto t = body();
            t.resume();
        } // destroyed while suspended on the read
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
}

static void linked(TempFile &f) {
    // THREAD_LOCAL engines link: write -> fsync -> read back, in order.
    aura::Engine tl(aura::Options().ring_count(1).ring_select(aura::RingSelect::ThreadLocal));
    char w[512], r[512] = {0};
    for (size_t i = 0; i < sizeof w; i++) w[i] = static_cast<char>(pat(i + 7));
    std::vector<int> order;
    std::vector<ssize_t> res;
    auto rec = [&](int who) {
        return [&, who](aura::Request &, ssize_t n) {
            order.push_back(who);
            res.push_back(n);
        };
    };
    aura::Request a = tl.write(f.fd, w, sizeof w, 4096, rec(1));
    a.set_linked();
    CHECK(a.is_linked());
    aura::Request b = tl.fsync(f.fd, rec(2));
    b.set_linked();
    tl.read(f.fd, r, sizeof r, 4096, rec(3));
    tl.drain();
    CHECK(order == (std::vector<int>{1, 2, 3}));
    CHECK(res == (std::vector<ssize_t>{512, 0, 512}));
    CHECK(std::memcmp(w, r, sizeof w) == 0);
}

int main() {
    std::setvbuf(stdout, nullptr, _IONBF, 0);
    try {
        aura::Engine engine;
        TempFile f(65536);
        basics(engine, f);
        tasks(engine, f);
        callback_exception(engine, f);
        cancel_and_loop(engine);
        registration_stats_log(engine, f);
        linked(f);
    } catch (const aura::Error &e) {
        std::fprintf(stderr, "unexpected aura::Error: %s\n", e.what());
        failures++;
    }
    task_abort_child();
    if (failures) {
        std::fprintf(stderr, "test_cpp: %d of %d checks FAILED\n", failures, checks + failures);
        return 1;
    }
    std::printf("test_cpp: %d checks passed\n", checks);
    return 0;
}
