// custom_config: an engine from aura::Options, 2000 reads, then its statistics.
//
//   custom_config FILE      (any readable file of at least 4 KiB)
#include <aura.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <iomanip>
#include <iostream>
#include <vector>

int main(int argc, char **argv) {
    if (argc != 2) {
        std::cerr << "usage: " << argv[0] << " FILE\n";
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) return 1;
    aura::Engine engine(aura::Options()
                            .queue_depth(128)
                            .ring_count(2)
                            .ring_select(aura::RingSelect::RoundRobin)
                            .max_p99_latency_ms(5.0)
                            .batch_threshold(8));
    engine.set_max_p99_latency(10.0);

    constexpr int reads = 2000, depth = 32;
    std::vector<aura::Buffer> bufs;
    for (int i = 0; i < depth; i++) bufs.push_back(engine.allocate_buffer(4096));
    int submitted = 0, completed = 0, failed = 0;
    while (completed < reads) {
        while (submitted < reads && submitted - completed < depth) {
            try {
                engine.read(fd, bufs[static_cast<size_t>(submitted % depth)], 4096, 0,
                            [&](aura::Request &, ssize_t n) {
                                failed += n < 0;
                                completed++;
                            });
            } catch (const aura::Error &e) {
                if (!e.is_again()) throw;
                break; // at the ring's limit: reap first
            }
            submitted++;
        }
        engine.wait(1000);
    }
    auto st = engine.stats();
    std::cout << "engine: " << st.ops_completed() << " ops, " << st.bytes_transferred()
              << " bytes, peak in flight " << st.peak_in_flight() << "\n";
    std::cout << "rings: " << engine.ring_count() << "\n" << std::fixed << std::setprecision(3);
    for (int i = 0; i < engine.ring_count(); i++) {
        auto rs = engine.ring_stats(i);
        auto h = engine.histogram(i);
        std::cout << "ring " << i << ": " << rs.ops_completed() << " ops, queue depth "
                  << rs.queue_depth() << ", limit " << rs.in_flight_limit() << ", phase "
                  << rs.aimd_phase_name() << ", p99 " << h.percentile(99.0).value_or(-1)
                  << " ms\n";
    }
    auto bs = engine.buffer_stats();
    std::cout << "buffer pool: " << bs.total_buffers() << " buffers, "
              << bs.total_allocated_bytes() << " bytes\n";
    close(fd);
    return failed == 0 && st.ops_completed() == reads && engine.ring_count() == 2 ? 0 : 1;
}
