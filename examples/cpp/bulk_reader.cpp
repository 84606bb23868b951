// bulk_reader: one coroutine per file, all running at once on one engine.
//
//   bulk_reader FILE...
//
// Each task reads its file in 64 KiB chunks with co_await; main starts them all and runs the
// event loop until every task finished. Prints "<bytes> <path>" per file and a total.
#include <aura.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <vector>

static aura::Task<long long> read_all(aura::Engine &engine, const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) throw aura::Error(errno, path);
    auto buf = engine.allocate_buffer(65536);
    long long total = 0;
    for (off_t off = 0;; off += 65536) {
        ssize_t n = co_await engine.async_read(fd, buf, buf.size(), off);
        if (n == 0) break;
        total += n;
    }
    co_await engine.async_close(fd);
    co_return total;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        std::cerr << "usage: " << argv[0] << " FILE...\n";
        return 2;
    }
    aura::Engine engine;
    std::vector<aura::Task<long long>> tasks;
    for (int i = 1; i < argc; i++) tasks.push_back(read_all(engine, argv[i]));
    for (auto &t : tasks) t.resume(); // each runs to its first co_await
    auto all_done = [&] {
        for (auto &t : tasks)
            if (!t.done()) return false;
        return true;
    };
    while (!all_done()) engine.wait(1000);

    long long total = 0;
    int status = 0;
    for (size_t i = 0; i < tasks.size(); i++) {
        try {
            long long n = tasks[i].get();
            std::cout << n << " " << argv[i + 1] << "\n";
            total += n;
        } catch (const aura::Error &e) {
            std::cerr << argv[i + 1] << ": " << e.code().message() << "\n";
            status = 1;
        }
    }
    std::cout << "total " << total << " bytes in " << tasks.size() << " files\n";
    return status;
}
