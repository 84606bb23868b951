// aura.hpp — header-only C++20 interface to aura's C API (aura.h).
//
//   aura::Engine engine;                                  // aura_create(); ~Engine: aura_destroy()
//   auto buf = engine.allocate_buffer(4096);              // aura::Buffer, RAII over the pool
//   engine.read(fd, buf, 4096, 0, [&](aura::Request&, ssize_t n) { ... });
//   engine.wait(100);                                     // callbacks run here
//
//   aura::Task<void> copy(aura::Engine& e, int in, int out) {
//       auto buf = e.allocate_buffer(65536);
//       for (off_t off = 0;; off += 65536) {
//           ssize_t n = co_await e.async_read(in, buf, 65536, off);
//           if (n <= 0) break;
//           co_await e.async_write(out, buf, static_cast<size_t>(n), off);
//       }
//   }
//
// Rules
// - Errors: a submission or call the library refuses throws aura::Error (a std::system_error
//   carrying the errno, generic category). A co_await whose operation completes with -errno
//   throws aura::Error at the co_await. Callback operations hand the raw result (bytes, new fd,
//   0 or -errno) to the callback.
// - Callbacks: any callable invocable as f(aura::Request&, ssize_t). It is moved to the heap at
//   submission and destroyed right after it ran (or when the submission fails). Callbacks run on
//   the thread inside poll / wait / run / drain (or in ~Engine, which drains). An exception
//   escaping a callback is caught and rethrown by the poll / wait / run / drain call that ran it.
// - Buffers and paths handed to an operation must stay valid until its completion.
// - Event-loop calls (poll, wait, run, drain) are serialised by the library: one thread at a
//   time, the others wait their turn. Calling them from inside a callback or a coroutine resumed
//   by one throws aura::Error(EDEADLK).
// - aura::Task<T> is lazy: nothing runs until resume(), co_await, or aura::sync_wait. A task
//   destroyed while suspended on I/O aborts the process (the kernel would write into freed
//   memory).
#ifndef AURA_HPP
#define AURA_HPP

#include <aura.h>

#include <sys/stat.h>
#include <sys/uio.h>

#include <atomic>
#include <cerrno>
#include <concepts>
#include <coroutine>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

namespace aura {

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// An errno from the library, with the name of the call that failed.
class Error : public std::system_error {
public:
    /// `err` is a positive errno value.
    Error(int err, const char *what) : std::system_error(err, std::generic_category(), what) {}

    /// The errno value.
    [[nodiscard]] int errno_value() const noexcept { return code().value(); }
    /// EAGAIN: no room right now; poll and retry.
    [[nodiscard]] bool is_again() const noexcept { return errno_value() == EAGAIN; }
    /// ECANCELED: the operation was cancelled.
    [[nodiscard]] bool is_cancelled() const noexcept { return errno_value() == ECANCELED; }
    /// ETIMEDOUT: a wait or drain ran out of time.
    [[nodiscard]] bool is_timeout() const noexcept { return errno_value() == ETIMEDOUT; }
    /// ESHUTDOWN: the engine is being destroyed.
    [[nodiscard]] bool is_shutdown() const noexcept { return errno_value() == ESHUTDOWN; }
    /// EINVAL: a bad argument.
    [[nodiscard]] bool is_invalid() const noexcept { return errno_value() == EINVAL; }
    /// EBUSY: a registration is busy (already registered or being unregistered).
    [[nodiscard]] bool is_busy() const noexcept { return errno_value() == EBUSY; }
    /// ENOMEM.
    [[nodiscard]] bool is_no_memory() const noexcept { return errno_value() == ENOMEM; }
};

namespace detail {
/// Throws aura::Error with the current errno (EIO if errno is 0).
[[noreturn]] inline void throw_errno(const char *what) {
    int e = errno;
    throw Error(e != 0 ? e : EIO, what);
}
} // namespace detail

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

/// How a submission picks its ring (aura_ring_select_t).
enum class RingSelect {
    Adaptive = AURA_SELECT_ADAPTIVE,
    CpuLocal = AURA_SELECT_CPU_LOCAL,
    RoundRobin = AURA_SELECT_ROUND_ROBIN,
    ThreadLocal = AURA_SELECT_THREAD_LOCAL,
};

/// Fluent builder over aura_options_t, starting from aura_options_init's defaults. Values are
/// checked by the library when the Engine is built (aura::Error EINVAL).
class Options {
public:
    Options() noexcept { aura_options_init(&opts_); }

    Options &queue_depth(int v) noexcept { opts_.queue_depth = v; return *this; }
    Options &ring_count(int v) noexcept { opts_.ring_count = v; return *this; }
    Options &initial_in_flight(int v) noexcept { opts_.initial_in_flight = v; return *this; }
    Options &min_in_flight(int v) noexcept { opts_.min_in_flight = v; return *this; }
    Options &max_p99_latency_ms(double v) noexcept { opts_.max_p99_latency_ms = v; return *this; }
    Options &buffer_alignment(size_t v) noexcept { opts_.buffer_alignment = v; return *this; }
    Options &disable_adaptive(bool v) noexcept { opts_.disable_adaptive = v; return *this; }
    Options &enable_sqpoll(bool v) noexcept { opts_.enable_sqpoll = v; return *this; }
    Options &sqpoll_idle_ms(int v) noexcept { opts_.sqpoll_idle_ms = v; return *this; }
    Options &ring_select(RingSelect v) noexcept {
        opts_.ring_select = static_cast<aura_ring_select_t>(v);
        return *this;
    }
    Options &single_thread(bool v) noexcept { opts_.single_thread = v; return *this; }
    Options &batch_threshold(int v) noexcept { opts_.batch_threshold = v; return *this; }

    [[nodiscard]] int queue_depth() const noexcept { return opts_.queue_depth; }
    [[nodiscard]] int ring_count() const noexcept { return opts_.ring_count; }
    [[nodiscard]] int initial_in_flight() const noexcept { return opts_.initial_in_flight; }
    [[nodiscard]] int min_in_flight() const noexcept { return opts_.min_in_flight; }
    [[nodiscard]] double max_p99_latency_ms() const noexcept { return opts_.max_p99_latency_ms; }
    [[nodiscard]] size_t buffer_alignment() const noexcept { return opts_.buffer_alignment; }
    [[nodiscard]] bool disable_adaptive() const noexcept { return opts_.disable_adaptive; }
    [[nodiscard]] bool enable_sqpoll() const noexcept { return opts_.enable_sqpoll; }
    [[nodiscard]] int sqpoll_idle_ms() const noexcept { return opts_.sqpoll_idle_ms; }
    [[nodiscard]] RingSelect ring_select() const noexcept {
        return static_cast<RingSelect>(opts_.ring_select);
    }
    [[nodiscard]] bool single_thread() const noexcept { return opts_.single_thread; }
    [[nodiscard]] int batch_threshold() const noexcept { return opts_.batch_threshold; }

    /// The C struct, for aura_create_with_options.
    [[nodiscard]] const aura_options_t &c_options() const noexcept { return opts_; }
    /// The C struct, writable.
    [[nodiscard]] aura_options_t &c_options() noexcept { return opts_; }

private:
    aura_options_t opts_{};
};

// ---------------------------------------------------------------------------------------------
// Engine state shared by the Engine, its buffers and its callbacks
// ---------------------------------------------------------------------------------------------

namespace detail {
/// Lives as long as the Engine or any Buffer of it. `engine` is NULL once aura_destroy ran.
struct State {
    aura_engine_t *engine = nullptr;
    std::mutex error_lock;
    std::exception_ptr callback_error; ///< first exception a callback threw, not yet rethrown

    void store_error(std::exception_ptr e) noexcept {
        std::lock_guard<std::mutex> g(error_lock);
        if (!callback_error) callback_error = std::move(e);
    }
    void rethrow_error() {
        std::exception_ptr e;
        {
            std::lock_guard<std::mutex> g(error_lock);
            e = std::exchange(callback_error, nullptr);
        }
        if (e) std::rethrow_exception(e);
    }
};
} // namespace detail

class Engine;

// ---------------------------------------------------------------------------------------------
// Buffers
// ---------------------------------------------------------------------------------------------

/// A buffer from the engine's aligned pool (aura_buffer_alloc), returned to it on destruction.
/// Move-only. May outlive its Engine (then the engine has already freed the memory and the
/// Buffer only forgets it). A Buffer made by wrap() does not own its memory.
class Buffer {
public:
    Buffer() noexcept = default;
    Buffer(Buffer &&o) noexcept
        : state_(std::move(o.state_)), data_(std::exchange(o.data_, nullptr)),
          size_(std::exchange(o.size_, 0)) {}
    Buffer &operator=(Buffer &&o) noexcept {
        if (this != &o) {
            reset();
            state_ = std::move(o.state_);
            data_ = std::exchange(o.data_, nullptr);
            size_ = std::exchange(o.size_, 0);
        }
        return *this;
    }
    Buffer(const Buffer &) = delete;
    Buffer &operator=(const Buffer &) = delete;
    ~Buffer() { reset(); }

    /// A non-owning Buffer over `size` bytes at `data` (never freed by the Buffer).
    [[nodiscard]] static Buffer wrap(void *data, size_t size) noexcept {
        Buffer b;
        b.data_ = data;
        b.size_ = size;
        return b;
    }

    [[nodiscard]] void *data() const noexcept { return data_; }
    [[nodiscard]] size_t size() const noexcept { return size_; }
    [[nodiscard]] bool empty() const noexcept { return data_ == nullptr; }
    [[nodiscard]] bool owned() const noexcept { return state_ != nullptr; }
    explicit operator bool() const noexcept { return data_ != nullptr; }

    /// The bytes.
    [[nodiscard]] std::span<std::byte> span() const noexcept {
        return {static_cast<std::byte *>(data_), size_};
    }
    /// The memory as an array of T (size() / sizeof(T) elements).
    template <class T> [[nodiscard]] T *as() const noexcept { return static_cast<T *>(data_); }

    /// Gives up ownership: the caller frees the pointer with aura_buffer_free.
    [[nodiscard]] void *release() noexcept {
        state_.reset();
        size_ = 0;
        return std::exchange(data_, nullptr);
    }

private:
    friend class Engine;
    Buffer(std::shared_ptr<detail::State> st, void *data, size_t size) noexcept
        : state_(std::move(st)), data_(data), size_(size) {}

    void reset() noexcept {
        if (state_ && data_ && state_->engine) aura_buffer_free(state_->engine, data_);
        state_.reset();
        data_ = nullptr;
        size_ = 0;
    }

    std::shared_ptr<detail::State> state_;
    void *data_ = nullptr;
    size_t size_ = 0;
};

/// What a read or write uses: a plain pointer (any Buffer or object pointer converts) or a
/// registered buffer slice, BufferRef::fixed(index, offset). Does not own anything.
class BufferRef {
public:
    /// A plain pointer (NULL makes the submission fail with EINVAL).
    BufferRef(const void *ptr) noexcept : buf_(aura_buf(ptr)) {} // NOLINT: implicit by design
    /// The memory of `b`.
    BufferRef(const Buffer &b) noexcept : buf_(aura_buf(b.data())) {} // NOLINT
    /// From the C descriptor.
    explicit BufferRef(aura_buf_t b) noexcept : buf_(b) {}

    /// `offset` bytes into registered buffer `index` (aura_buf_fixed).
    [[nodiscard]] static BufferRef fixed(int index, size_t offset = 0) noexcept {
        return BufferRef(aura_buf_fixed(index, offset));
    }

    [[nodiscard]] bool is_registered() const noexcept { return buf_.type == AURA_BUF_REGISTERED; }
    /// The pointer (plain buffers), else nullptr.
    [[nodiscard]] void *data() const noexcept { return is_registered() ? nullptr : buf_.u.ptr; }
    /// The registered index (registered buffers), else -1.
    [[nodiscard]] int fixed_index() const noexcept {
        return is_registered() ? buf_.u.fixed.index : -1;
    }
    /// The offset in the registered buffer (registered buffers), else 0.
    [[nodiscard]] size_t fixed_offset() const noexcept {
        return is_registered() ? buf_.u.fixed.offset : 0;
    }
    /// The C descriptor.
    [[nodiscard]] aura_buf_t c_buf() const noexcept { return buf_; }

private:
    aura_buf_t buf_;
};

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// A submitted operation. Valid from submission until its callback returns; after that the
/// library reuses the handle, so keep a Request only while the operation is in flight.
class Request {
public:
    explicit Request(aura_request_t *r) noexcept : req_(r) {}

    /// Still in flight (false once its completion is being delivered).
    [[nodiscard]] bool pending() const noexcept { return aura_request_pending(req_); }
    /// The fd given at submission.
    [[nodiscard]] int fd() const noexcept { return aura_request_fd(req_); }
    /// The operation kind.
    [[nodiscard]] aura_op_type_t op_type() const noexcept { return aura_request_op_type(req_); }
    /// Whether it is linked to the next submission.
    [[nodiscard]] bool is_linked() const noexcept { return aura_request_is_linked(req_); }
    /// Links the next submission of this thread after this one (aura_request_set_linked).
    void set_linked() {
        if (aura_request_set_linked(req_) != 0) detail::throw_errno("aura_request_set_linked");
    }
    /// The C handle.
    [[nodiscard]] aura_request_t *handle() const noexcept { return req_; }

private:
    aura_request_t *req_;
};

// ---------------------------------------------------------------------------------------------
// Callbacks
// ---------------------------------------------------------------------------------------------

/// What the callback operations accept.
template <class F>
concept Callback = std::invocable<std::decay_t<F> &, Request &, ssize_t>;

namespace detail {
struct CallbackBase {
    explicit CallbackBase(State *st) noexcept : state(st) {}
    virtual ~CallbackBase() = default;
    virtual void invoke(Request &r, ssize_t result) = 0;
    CallbackBase(const CallbackBase &) = delete;
    CallbackBase &operator=(const CallbackBase &) = delete;
    State *state;
};

template <class F> struct CallbackBox final : CallbackBase {
    template <class G>
    CallbackBox(State *st, G &&g) : CallbackBase(st), fn(std::forward<G>(g)) {}
    void invoke(Request &r, ssize_t result) override { std::invoke(fn, r, result); }
    F fn;
};

/// The C callback of every callback operation: runs the boxed callable once, then frees it.
inline void callback_trampoline(aura_request_t *req, ssize_t result, void *ud) noexcept {
    std::unique_ptr<CallbackBase> box(static_cast<CallbackBase *>(ud));
    Request r(req);
    try {
        box->invoke(r, result);
    } catch (...) {
        box->state->store_error(std::current_exception());
    }
}

/// A co_await on one operation: submits in await_suspend, resumes the coroutine from the
/// completion callback (or continues at once if the completion won the race).
template <class Submit, class R> class IoAwaiter {
public:
    IoAwaiter(Submit s, const char *what) : submit_(std::move(s)), what_(what) {}
    IoAwaiter(const IoAwaiter &) = delete;
    IoAwaiter &operator=(const IoAwaiter &) = delete;

    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) {
        handle_ = h;
        if (submit_(&IoAwaiter::on_complete, this) == nullptr) throw_errno(what_);
        // If the completion already ran (another thread waiting), continue without suspending.
        return phase_.exchange(kSuspended, std::memory_order_acq_rel) != kDone;
    }
    R await_resume() const {
        if (result_ < 0) throw Error(static_cast<int>(-result_), what_);
        if constexpr (!std::is_void_v<R>) return static_cast<R>(result_);
    }

private:
    static constexpr int kSubmitting = 0, kSuspended = 1, kDone = 2;
    static void on_complete(aura_request_t *, ssize_t result, void *ud) noexcept {
        auto *self = static_cast<IoAwaiter *>(ud);
        self->result_ = result;
        if (self->phase_.exchange(kDone, std::memory_order_acq_rel) == kSuspended)
            self->handle_.resume();
    }

    Submit submit_;
    const char *what_;
    std::coroutine_handle<> handle_{};
    ssize_t result_ = 0;
    std::atomic<int> phase_{kSubmitting};
};
} // namespace detail

// ---------------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------------

/// Engine-wide statistics (aura_stats_t).
class Stats {
public:
    Stats() noexcept = default;
    explicit Stats(const aura_stats_t &s) noexcept : s_(s) {}
    [[nodiscard]] int64_t ops_completed() const noexcept { return s_.ops_completed; }
    [[nodiscard]] int64_t bytes_transferred() const noexcept { return s_.bytes_transferred; }
    [[nodiscard]] double throughput_bps() const noexcept { return s_.current_throughput_bps; }
    [[nodiscard]] double p99_latency_ms() const noexcept { return s_.p99_latency_ms; }
    [[nodiscard]] int current_in_flight() const noexcept { return s_.current_in_flight; }
    [[nodiscard]] int optimal_in_flight() const noexcept { return s_.optimal_in_flight; }
    [[nodiscard]] int peak_in_flight() const noexcept { return s_.peak_in_flight; }
    [[nodiscard]] int optimal_batch_size() const noexcept { return s_.optimal_batch_size; }
    [[nodiscard]] uint64_t adaptive_spills() const noexcept { return s_.adaptive_spills; }
    [[nodiscard]] const aura_stats_t &c_stats() const noexcept { return s_; }

private:
    aura_stats_t s_{};
};

/// One ring's statistics (aura_ring_stats_t).
class RingStats {
public:
    RingStats() noexcept = default;
    explicit RingStats(const aura_ring_stats_t &s) noexcept : s_(s) {}
    [[nodiscard]] int64_t ops_completed() const noexcept { return s_.ops_completed; }
    [[nodiscard]] int64_t bytes_transferred() const noexcept { return s_.bytes_transferred; }
    [[nodiscard]] int pending_count() const noexcept { return s_.pending_count; }
    [[nodiscard]] int peak_in_flight() const noexcept { return s_.peak_in_flight; }
    [[nodiscard]] int in_flight_limit() const noexcept { return s_.in_flight_limit; }
    [[nodiscard]] int batch_threshold() const noexcept { return s_.batch_threshold; }
    [[nodiscard]] double p99_latency_ms() const noexcept { return s_.p99_latency_ms; }
    [[nodiscard]] double throughput_bps() const noexcept { return s_.throughput_bps; }
    [[nodiscard]] int aimd_phase() const noexcept { return s_.aimd_phase; }
    [[nodiscard]] std::string_view aimd_phase_name() const noexcept {
        return aura_phase_name(s_.aimd_phase);
    }
    [[nodiscard]] int queue_depth() const noexcept { return s_.queue_depth; }
    [[nodiscard]] const aura_ring_stats_t &c_stats() const noexcept { return s_; }

private:
    aura_ring_stats_t s_{};
};

/// A ring's latency histogram (aura_histogram_t).
class Histogram {
public:
    Histogram() noexcept = default;
    explicit Histogram(const aura_histogram_t &h) noexcept : h_(h) {}
    /// Latency in ms at `pct` (0..100); nullopt when empty or out of range.
    [[nodiscard]] std::optional<double> percentile(double pct) const noexcept {
        double v = aura_histogram_percentile(&h_, pct);
        if (v < 0) return std::nullopt;
        return v;
    }
    /// Upper bound of bucket `i` in microseconds (0 when out of range).
    [[nodiscard]] int bucket_upper_bound_us(int i) const noexcept {
        return aura_histogram_bucket_upper_bound_us(&h_, i);
    }
    [[nodiscard]] std::span<const uint32_t> buckets() const noexcept { return h_.buckets; }
    [[nodiscard]] uint32_t overflow() const noexcept { return h_.overflow; }
    [[nodiscard]] uint32_t total_count() const noexcept { return h_.total_count; }
    [[nodiscard]] int max_tracked_us() const noexcept { return h_.max_tracked_us; }
    [[nodiscard]] const aura_histogram_t &c_histogram() const noexcept { return h_; }

private:
    aura_histogram_t h_{};
};

/// Buffer pool statistics (aura_buffer_stats_t).
class BufferStats {
public:
    BufferStats() noexcept = default;
    explicit BufferStats(const aura_buffer_stats_t &s) noexcept : s_(s) {}
    [[nodiscard]] size_t total_allocated_bytes() const noexcept { return s_.total_allocated_bytes; }
    [[nodiscard]] size_t total_buffers() const noexcept { return s_.total_buffers; }
    [[nodiscard]] int shard_count() const noexcept { return s_.shard_count; }
    [[nodiscard]] const aura_buffer_stats_t &c_stats() const noexcept { return s_; }

private:
    aura_buffer_stats_t s_{};
};

// ---------------------------------------------------------------------------------------------
// Engine
// ---------------------------------------------------------------------------------------------

/// An aura engine (aura_create / aura_destroy). Move-only. Its destructor waits for every
/// operation in flight (their callbacks run there).
class Engine {
public:
    /// aura_create(). Throws aura::Error.
    Engine() : state_(std::make_shared<detail::State>()) {
        state_->engine = aura_create();
        if (!state_->engine) detail::throw_errno("aura_create");
    }
    /// aura_create_with_options(). Throws aura::Error (EINVAL for a bad option).
    explicit Engine(const Options &o) : state_(std::make_shared<detail::State>()) {
        state_->engine = aura_create_with_options(&o.c_options());
        if (!state_->engine) detail::throw_errno("aura_create_with_options");
    }
    Engine(Engine &&) noexcept = default;
    Engine &operator=(Engine &&o) noexcept {
        if (this != &o) {
            close();
            state_ = std::move(o.state_);
        }
        return *this;
    }
    Engine(const Engine &) = delete;
    Engine &operator=(const Engine &) = delete;
    ~Engine() { close(); }

    /// The C handle (NULL after a move).
    [[nodiscard]] aura_engine_t *handle() const noexcept {
        return state_ ? state_->engine : nullptr;
    }

    // --- buffers ------------------------------------------------------------------------------

    /// An aligned buffer of `size` bytes from the pool. Throws aura::Error.
    [[nodiscard]] Buffer allocate_buffer(size_t size) {
        void *p = aura_buffer_alloc(h(), size);
        if (!p) detail::throw_errno("aura_buffer_alloc");
        return Buffer(state_, p, size);
    }

    // --- callback operations -------------------------------------------------------------------
    // Each returns the Request; a refused submission throws aura::Error and drops the callback.

    template <Callback F>
    Request read(int fd, BufferRef buf, size_t len, off_t offset, F &&cb,
                 aura_submit_flags_t flags = AURA_NO_FLAGS) {
        aura_engine_t *e = h();
        return submit(std::forward<F>(cb), "aura_read", [&](aura_callback_t c, void *ud) {
            return aura_read(e, fd, buf.c_buf(), len, offset, flags, c, ud);
        });
    }
    template <Callback F>
    Request write(int fd, BufferRef buf, size_t len, off_t offset, F &&cb,
                  aura_submit_flags_t flags = AURA_NO_FLAGS) {
        aura_engine_t *e = h();
        return submit(std::forward<F>(cb), "aura_write", [&](aura_callback_t c, void *ud) {
            return aura_write(e, fd, buf.c_buf(), len, offset, flags, c, ud);
        });
    }
    /// The iovec array is copied at submission; the memory it points at must outlive the op.
    template <Callback F>
    Request readv(int fd, std::span<const iovec> iov, off_t offset, F &&cb,
                  aura_submit_flags_t flags = AURA_NO_FLAGS) {
        aura_engine_t *e = h();
        return submit(std::forward<F>(cb), "aura_readv", [&](aura_callback_t c, void *ud) {
            return aura_readv(e, fd, iov.data(), iov_count(iov), offset, flags, c, ud);
        });
    }
    template <Callback F>
    Request writev(int fd, std::span<const iovec> iov, off_t offset, F &&cb,
                   aura_submit_flags_t flags = AURA_NO_FLAGS) {
        aura_engine_t *e = h();
        return submit(std::forward<F>(cb), "aura_writev", [&](aura_callback_t c, void *ud) {
            return aura_writev(e, fd, iov.data(), iov_count(iov), offset, flags, c, ud);
        });
    }
    template <Callback F>
    Request fsync(int fd, F &&cb, aura_submit_flags_t flags = AURA_NO_FLAGS) {
        aura_engine_t *e = h();
        return submit(std::forward<F>(cb), "aura_fsync", [&](aura_callback_t c, void *ud) {
            return aura_fsync(e, fd, AURA_FSYNC_DEFAULT, flags, c, ud);
        });
    }
    template <Callback F>
    Request fdatasync(int fd, F &&cb, aura_submit_flags_t flags = AURA_NO_FLAGS) {
        aura_engine_t *e = h();
        return submit(std::forward<F>(cb), "aura_fsync", [&](aura_callback_t c, void *ud) {
            return aura_fsync(e, fd, AURA_FSYNC_DATASYNC, flags, c, ud);
        });
    }
    /// The callback's result is the new fd. `path` must stay valid until it ran.
    template <Callback F>
    Request openat(int dirfd, const char *path, int open_flags, mode_t mode, F &&cb,
                   aura_submit_flags_t flags = AURA_NO_FLAGS) {
        aura_engine_t *e = h();
        return submit(std::forward<F>(cb), "aura_openat", [&](aura_callback_t c, void *ud) {
            return aura_openat(e, dirfd, path, open_flags, mode, flags, c, ud);
        });
    }
    template <Callback F>
    Request close(int fd, F &&cb, aura_submit_flags_t flags = AURA_NO_FLAGS) {
        aura_engine_t *e = h();
        return submit(std::forward<F>(cb), "aura_close", [&](aura_callback_t c, void *ud) {
            return aura_close(e, fd, flags, c, ud);
        });
    }
    /// `path` and `out` must stay valid until the callback ran.
    template <Callback F>
    Request statx(int dirfd, const char *path, int at_flags, unsigned mask, struct statx *out,
                  F &&cb, aura_submit_flags_t flags = AURA_NO_FLAGS) {
        aura_engine_t *e = h();
        return submit(std::forward<F>(cb), "aura_statx", [&](aura_callback_t c, void *ud) {
            return aura_statx(e, dirfd, path, at_flags, mask, out, flags, c, ud);
        });
    }
    template <Callback F>
    Request fallocate(int fd, int mode, off_t offset, off_t len, F &&cb,
                      aura_submit_flags_t flags = AURA_NO_FLAGS) {
        aura_engine_t *e = h();
        return submit(std::forward<F>(cb), "aura_fallocate", [&](aura_callback_t c, void *ud) {
            return aura_fallocate(e, fd, mode, offset, len, flags, c, ud);
        });
    }
    template <Callback F>
    Request ftruncate(int fd, off_t length, F &&cb, aura_submit_flags_t flags = AURA_NO_FLAGS) {
        aura_engine_t *e = h();
        return submit(std::forward<F>(cb), "aura_ftruncate", [&](aura_callback_t c, void *ud) {
            return aura_ftruncate(e, fd, length, flags, c, ud);
        });
    }
    template <Callback F>
    Request sync_file_range(int fd, off_t offset, off_t nbytes, unsigned range_flags, F &&cb,
                            aura_submit_flags_t flags = AURA_NO_FLAGS) {
        aura_engine_t *e = h();
        return submit(std::forward<F>(cb), "aura_sync_file_range",
                      [&](aura_callback_t c, void *ud) {
                          return aura_sync_file_range(e, fd, offset, nbytes, range_flags, flags,
                                                      c, ud);
                      });
    }

    /// Asks the kernel to cancel `r`. true: cancel submitted (the callback then gets
    /// -ECANCELED, or its normal result if it won the race); false: `r` already completed
    /// (EALREADY). Other failures throw aura::Error.
    bool cancel(const Request &r) {
        if (aura_cancel(h(), r.handle()) == 0) return true;
        if (errno == EALREADY) return false;
        detail::throw_errno("aura_cancel");
    }

    // --- co_await operations ------------------------------------------------------------------
    // Each returns an awaitable; co_await submits, suspends, and yields the result, or throws
    // aura::Error (refused submission, or the operation failed with -errno).

    [[nodiscard]] auto async_read(int fd, BufferRef buf, size_t len, off_t offset,
                                  aura_submit_flags_t flags = AURA_NO_FLAGS) {
        aura_engine_t *e = h();
        return awaiter<ssize_t>("aura_read", [=](aura_callback_t c, void *ud) {
            return aura_read(e, fd, buf.c_buf(), len, offset, flags, c, ud);
        });
    }
    [[nodiscard]] auto async_write(int fd, BufferRef buf, size_t len, off_t offset,
                                   aura_submit_flags_t flags = AURA_NO_FLAGS) {
        aura_engine_t *e = h();
        return awaiter<ssize_t>("aura_write", [=](aura_callback_t c, void *ud) {
            return aura_write(e, fd, buf.c_buf(), len, offset, flags, c, ud);
        });
    }
    [[nodiscard]] auto async_readv(int fd, std::span<const iovec> iov, off_t offset,
                                   aura_submit_flags_t flags = AURA_NO_FLAGS) {
        aura_engine_t *e = h();
        return awaiter<ssize_t>("aura_readv", [=](aura_callback_t c, void *ud) {
            return aura_readv(e, fd, iov.data(), iov_count(iov), offset, flags, c, ud);
        });
    }
    [[nodiscard]] auto async_writev(int fd, std::span<const iovec> iov, off_t offset,
                                    aura_submit_flags_t flags = AURA_NO_FLAGS) {
        aura_engine_t *e = h();
        return awaiter<ssize_t>("aura_writev", [=](aura_callback_t c, void *ud) {
            return aura_writev(e, fd, iov.data(), iov_count(iov), offset, flags, c, ud);
        });
    }
    [[nodiscard]] auto async_fsync(int fd, aura_submit_flags_t flags = AURA_NO_FLAGS) {
        aura_engine_t *e = h();
        return awaiter<void>("aura_fsync", [=](aura_callback_t c, void *ud) {
            return aura_fsync(e, fd, AURA_FSYNC_DEFAULT, flags, c, ud);
        });
    }
    [[nodiscard]] auto async_fdatasync(int fd, aura_submit_flags_t flags = AURA_NO_FLAGS) {
        aura_engine_t *e = h();
        return awaiter<void>("aura_fsync", [=](aura_callback_t c, void *ud) {
            return aura_fsync(e, fd, AURA_FSYNC_DATASYNC, flags, c, ud);
        });
    }
    /// Yields the new fd.
    [[nodiscard]] auto async_openat(int dirfd, const char *path, int open_flags, mode_t mode,
                                    aura_submit_flags_t flags = AURA_NO_FLAGS) {
        aura_engine_t *e = h();
        return awaiter<int>("aura_openat", [=](aura_callback_t c, void *ud) {
            return aura_openat(e, dirfd, path, open_flags, mode, flags, c, ud);
        });
    }
    [[nodiscard]] auto async_close(int fd, aura_submit_flags_t flags = AURA_NO_FLAGS) {
        aura_engine_t *e = h();
        return awaiter<void>("aura_close", [=](aura_callback_t c, void *ud) {
            return aura_close(e, fd, flags, c, ud);
        });
    }
    [[nodiscard]] auto async_statx(int dirfd, const char *path, int at_flags, unsigned mask,
                                   struct statx *out, aura_submit_flags_t flags = AURA_NO_FLAGS) {
        aura_engine_t *e = h();
        return awaiter<void>("aura_statx", [=](aura_callback_t c, void *ud) {
            return aura_statx(e, dirfd, path, at_flags, mask, out, flags, c, ud);
        });
    }
    [[nodiscard]] auto async_fallocate(int fd, int mode, off_t offset, off_t len,
                                       aura_submit_flags_t flags = AURA_NO_FLAGS) {
        aura_engine_t *e = h();
        return awaiter<void>("aura_fallocate", [=](aura_callback_t c, void *ud) {
            return aura_fallocate(e, fd, mode, offset, len, flags, c, ud);
        });
    }
    [[nodiscard]] auto async_ftruncate(int fd, off_t length,
                                       aura_submit_flags_t flags = AURA_NO_FLAGS) {
        aura_engine_t *e = h();
        return awaiter<void>("aura_ftruncate", [=](aura_callback_t c, void *ud) {
            return aura_ftruncate(e, fd, length, flags, c, ud);
        });
    }
    [[nodiscard]] auto async_sync_file_range(int fd, off_t offset, off_t nbytes,
                                             unsigned range_flags,
                                             aura_submit_flags_t flags = AURA_NO_FLAGS) {
        aura_engine_t *e = h();
        return awaiter<void>("aura_sync_file_range", [=](aura_callback_t c, void *ud) {
            return aura_sync_file_range(e, fd, offset, nbytes, range_flags, flags, c, ud);
        });
    }

    // --- event loop -----------------------------------------------------------------------------

    /// Runs ready callbacks without blocking; returns how many ran.
    int poll() {
        check_not_in_callback("aura_poll");
        int n = aura_poll(h());
        int err = errno;
        state_->rethrow_error();
        if (n < 0) throw Error(err, "aura_poll");
        return n;
    }
    /// Blocks up to `timeout_ms` (-1 = forever) until at least one callback ran; returns how
    /// many ran, 0 when the time ran out or nothing was pending.
    int wait(int timeout_ms = -1) {
        check_not_in_callback("aura_wait");
        int n = aura_wait(h(), timeout_ms);
        int err = errno;
        state_->rethrow_error();
        if (n < 0) {
            if (err == ETIMEDOUT) return 0;
            throw Error(err, "aura_wait");
        }
        return n;
    }
    /// Runs callbacks until stop(), then drains what is pending.
    void run() {
        check_not_in_callback("aura_run");
        aura_run(h());
        state_->rethrow_error();
    }
    /// Makes run() return. Any thread, callbacks included.
    void stop() noexcept { aura_stop(handle()); }
    /// Runs callbacks until nothing is pending; returns how many ran. Throws aura::Error
    /// (ETIMEDOUT when `timeout_ms` passed first).
    int drain(int timeout_ms = -1) {
        check_not_in_callback("aura_drain");
        int n = aura_drain(h(), timeout_ms);
        int err = errno;
        state_->rethrow_error();
        if (n < 0) throw Error(err, "aura_drain");
        return n;
    }
    /// Submits queued operations now.
    void flush() {
        if (aura_flush(h()) != 0) detail::throw_errno("aura_flush");
    }
    /// The engine's eventfd, for epoll (owned by the engine).
    [[nodiscard]] int poll_fd() const {
        int fd = aura_get_poll_fd(h());
        if (fd < 0) detail::throw_errno("aura_get_poll_fd");
        return fd;
    }
    /// Operations submitted and not completed.
    [[nodiscard]] int pending_count() const noexcept { return aura_pending_count(handle()); }

    // --- registration -------------------------------------------------------------------------

    void register_buffers(std::span<const iovec> iov) {
        if (aura_register_buffers(h(), iov.data(), static_cast<unsigned>(iov.size())) != 0)
            detail::throw_errno("aura_register_buffers");
    }
    void register_files(std::span<const int> fds) {
        if (aura_register_files(h(), fds.data(), static_cast<unsigned>(fds.size())) != 0)
            detail::throw_errno("aura_register_files");
    }
    /// Replaces registered file `index` with `fd` (-1 clears the slot).
    void update_file(int index, int fd) {
        if (aura_update_file(h(), index, fd) != 0) detail::throw_errno("aura_update_file");
    }
    /// Waits for operations using the registered buffers, then unregisters them.
    void unregister_buffers() { unregister(AURA_REG_BUFFERS); }
    void unregister_files() { unregister(AURA_REG_FILES); }
    /// Deferred form (safe from callbacks): done when nothing uses them any more.
    void request_unregister_buffers() { request_unregister(AURA_REG_BUFFERS); }
    void request_unregister_files() { request_unregister(AURA_REG_FILES); }

    // --- statistics and configuration -----------------------------------------------------------

    [[nodiscard]] Stats stats() const {
        aura_stats_t s{};
        if (aura_get_stats(h(), &s, sizeof s) != 0) detail::throw_errno("aura_get_stats");
        return Stats(s);
    }
    [[nodiscard]] int ring_count() const {
        int n = aura_get_ring_count(h());
        if (n < 0) detail::throw_errno("aura_get_ring_count");
        return n;
    }
    [[nodiscard]] RingStats ring_stats(int ring) const {
        aura_ring_stats_t s{};
        if (aura_get_ring_stats(h(), ring, &s, sizeof s) != 0)
            detail::throw_errno("aura_get_ring_stats");
        return RingStats(s);
    }
    [[nodiscard]] Histogram histogram(int ring) const {
        aura_histogram_t hist{};
        if (aura_get_histogram(h(), ring, &hist, sizeof hist) != 0)
            detail::throw_errno("aura_get_histogram");
        return Histogram(hist);
    }
    [[nodiscard]] BufferStats buffer_stats() const {
        aura_buffer_stats_t s{};
        if (aura_get_buffer_stats(h(), &s, sizeof s) != 0)
            detail::throw_errno("aura_get_buffer_stats");
        return BufferStats(s);
    }
    /// Prometheus text exposition of the engine's metrics.
    [[nodiscard]] std::string metrics_prometheus() const {
        std::string out(16384 + 12288 * static_cast<size_t>(ring_count()), '\0');
        for (;;) {
            int n = aura_metrics_prometheus(h(), out.data(), out.size());
            if (n >= 0) {
                out.resize(static_cast<size_t>(n));
                return out;
            }
            if (errno != ENOBUFS) detail::throw_errno("aura_metrics_prometheus");
            out.assign(static_cast<size_t>(-static_cast<long long>(n)) + 1, '\0');
        }
    }
    void set_max_p99_latency(double ms) {
        if (aura_set_max_p99_latency(h(), ms) != 0) detail::throw_errno("aura_set_max_p99_latency");
    }
    void set_min_in_flight(int n) {
        if (aura_set_min_in_flight(h(), n) != 0) detail::throw_errno("aura_set_min_in_flight");
    }
    void set_batch_threshold(int n) {
        if (aura_set_batch_threshold(h(), n) != 0) detail::throw_errno("aura_set_batch_threshold");
    }
    /// The latched unrecoverable error, if any.
    [[nodiscard]] std::optional<std::error_code> fatal_error() const {
        int e = aura_get_fatal_error(h());
        if (e < 0) detail::throw_errno("aura_get_fatal_error");
        if (e == 0) return std::nullopt;
        return std::error_code(e, std::generic_category());
    }

private:
    aura_engine_t *h() const {
        if (!state_ || !state_->engine) throw Error(EINVAL, "aura::Engine: moved-from engine");
        return state_->engine;
    }
    void close() noexcept {
        if (state_ && state_->engine) {
            aura_destroy(state_->engine);
            state_->engine = nullptr;
        }
        state_.reset();
    }
    static int iov_count(std::span<const iovec> iov) noexcept {
        // More than INT_MAX entries is past IOV_MAX anyway: let the library refuse it.
        return iov.size() > 0x7fffffffu ? 0x7fffffff : static_cast<int>(iov.size());
    }
    static void check_not_in_callback(const char *what) {
        if (aura_in_callback_context()) throw Error(EDEADLK, what);
    }
    void unregister(aura_reg_type_t t) {
        if (aura_unregister(h(), t) != 0) detail::throw_errno("aura_unregister");
    }
    void request_unregister(aura_reg_type_t t) {
        if (aura_request_unregister(h(), t) != 0) detail::throw_errno("aura_request_unregister");
    }

    template <class F, class S> Request submit(F &&cb, const char *what, S &&sub) {
        auto box = std::make_unique<detail::CallbackBox<std::decay_t<F>>>(state_.get(),
                                                                          std::forward<F>(cb));
        aura_request_t *r = sub(&detail::callback_trampoline,
                                static_cast<detail::CallbackBase *>(box.get()));
        if (!r) detail::throw_errno(what);
        box.release(); // the trampoline frees it after the callback ran
        return Request(r);
    }

    template <class R, class S> static detail::IoAwaiter<S, R> awaiter(const char *what, S sub) {
        return detail::IoAwaiter<S, R>(std::move(sub), what);
    }

    std::shared_ptr<detail::State> state_;
};

// ---------------------------------------------------------------------------------------------
// Task<T>
// ---------------------------------------------------------------------------------------------

template <class T = void> class Task;

namespace detail {
struct TaskPromiseBase {
    std::coroutine_handle<> continuation{};
    std::exception_ptr error{};
    bool started = false;

    std::suspend_always initial_suspend() noexcept { return {}; }
    struct FinalAwaiter {
        bool await_ready() const noexcept { return false; }
        template <class P>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) const noexcept {
            auto c = h.promise().continuation;
            return c ? c : std::noop_coroutine();
        }
        void await_resume() const noexcept {}
    };
    FinalAwaiter final_suspend() noexcept { return {}; }
    void unhandled_exception() noexcept { error = std::current_exception(); }
};

template <class T> struct TaskPromise : TaskPromiseBase {
    std::optional<T> value;
    Task<T> get_return_object() noexcept;
    template <class U>
        requires std::convertible_to<U &&, T>
    void return_value(U &&v) {
        value.emplace(std::forward<U>(v));
    }
};
template <> struct TaskPromise<void> : TaskPromiseBase {
    Task<void> get_return_object() noexcept;
    void return_void() noexcept {}
};
} // namespace detail

/// A lazy coroutine yielding T. Start it with resume() (then drive the engine until done()),
/// co_await it from another task, or run it with aura::sync_wait. Move-only.
template <class T> class Task {
public:
    using promise_type = detail::TaskPromise<T>;
    using handle_type = std::coroutine_handle<promise_type>;

    Task() noexcept = default;
    explicit Task(handle_type h) noexcept : h_(h) {}
    Task(Task &&o) noexcept : h_(std::exchange(o.h_, {})) {}
    Task &operator=(Task &&o) noexcept {
        if (this != &o) {
            destroy();
            h_ = std::exchange(o.h_, {});
        }
        return *this;
    }
    Task(const Task &) = delete;
    Task &operator=(const Task &) = delete;
    ~Task() { destroy(); }

    /// Starts the task, or continues it; a finished task is left alone.
    void resume() {
        if (!h_ || h_.done()) return;
        h_.promise().started = true;
        h_.resume();
    }
    /// Whether the body has finished (returned or thrown).
    [[nodiscard]] bool done() const noexcept { return !h_ || h_.done(); }
    /// The result (rethrows what the body threw). Throws std::logic_error if not done.
    T get() {
        if (!h_ || !h_.done()) throw std::logic_error("aura::Task::get: the task has not finished");
        if (h_.promise().error) std::rethrow_exception(h_.promise().error);
        if constexpr (!std::is_void_v<T>) return std::move(*h_.promise().value);
    }

    /// co_await task: runs it and yields its result.
    auto operator co_await() && noexcept {
        struct Awaiter {
            handle_type h;
            bool await_ready() const noexcept { return !h || h.done(); }
            std::coroutine_handle<> await_suspend(std::coroutine_handle<> cont) noexcept {
                h.promise().continuation = cont;
                h.promise().started = true;
                return h;
            }
            T await_resume() {
                if (h.promise().error) std::rethrow_exception(h.promise().error);
                if constexpr (!std::is_void_v<T>) return std::move(*h.promise().value);
            }
        };
        return Awaiter{h_};
    }
    auto operator co_await() & noexcept { return std::move(*this).operator co_await(); }

private:
    void destroy() noexcept {
        if (!h_) return;
        if (h_.promise().started && !h_.done()) {
            std::fputs("aura::Task destroyed while suspended on I/O in flight\n", stderr);
            std::abort();
        }
        h_.destroy();
        h_ = {};
    }
    handle_type h_{};
};

namespace detail {
template <class T> Task<T> TaskPromise<T>::get_return_object() noexcept {
    return Task<T>(std::coroutine_handle<TaskPromise<T>>::from_promise(*this));
}
inline Task<void> TaskPromise<void>::get_return_object() noexcept {
    return Task<void>(std::coroutine_handle<TaskPromise<void>>::from_promise(*this));
}
} // namespace detail

/// Starts `task` and runs the engine's event loop until it finished; returns its result (or
/// rethrows its exception). Must not be called from a callback.
template <class T> T sync_wait(Engine &engine, Task<T> &task) {
    task.resume();
    while (!task.done()) {
        if (engine.wait(100) == 0 && engine.pending_count() == 0 && !task.done())
            throw Error(EDEADLK, "aura::sync_wait: the task waits on nothing the engine runs");
    }
    return task.get();
}
/// sync_wait on a temporary task.
template <class T> T sync_wait(Engine &engine, Task<T> &&task) {
    Task<T> t = std::move(task);
    return sync_wait(engine, t);
}

// ---------------------------------------------------------------------------------------------
// Logging and version
// ---------------------------------------------------------------------------------------------

/// Log levels (syslog numbers).
enum class LogLevel {
    Error = AURA_LOG_ERR,
    Warning = AURA_LOG_WARN,
    Notice = AURA_LOG_NOTICE,
    Info = AURA_LOG_INFO,
    Debug = AURA_LOG_DEBUG,
};

/// A process-wide log handler; called from any thread.
using LogHandler = std::function<void(LogLevel, std::string_view)>;

namespace detail {
inline void log_trampoline(int level, const char *msg, void *ud) noexcept {
    try {
        (*static_cast<LogHandler *>(ud))(static_cast<LogLevel>(level),
                                         msg ? std::string_view(msg) : std::string_view());
    } catch (...) {
        // A log handler must not throw through the library; the message is dropped.
    }
}
} // namespace detail

/// Installs `handler` process-wide (an empty function restores silence). Handlers installed
/// earlier stay alive until the process exits, since another thread may still be inside one.
inline void set_log_handler(LogHandler handler) {
    static std::mutex lock;
    static auto *installed = new std::list<LogHandler>(); // never freed: see above
    std::lock_guard<std::mutex> g(lock);
    if (!handler) {
        aura_set_log_handler(nullptr, nullptr);
        return;
    }
    installed->push_back(std::move(handler));
    aura_set_log_handler(&detail::log_trampoline, &installed->back());
}

/// Sends `msg` to the installed log handler.
inline void log_emit(LogLevel level, std::string_view msg) noexcept {
    aura_log_emit(static_cast<int>(level), "%.*s", static_cast<int>(msg.size()), msg.data());
}

/// The library's version string ("0.6.0").
[[nodiscard]] inline std::string_view version() noexcept { return aura_version(); }
/// The library's version number (600).
[[nodiscard]] inline int version_int() noexcept { return aura_version_int(); }
/// Whether the calling thread is inside a completion callback.
[[nodiscard]] inline bool in_callback_context() noexcept { return aura_in_callback_context(); }

} // namespace aura

#endif // AURA_HPP
