// file_copy: copy a file with lambda callbacks chaining read -> write -> next read.
//
//   file_copy SRC DST
#include <aura.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <iostream>
#include <vector>

int main(int argc, char **argv) {
    if (argc != 3) {
        std::cerr << "usage: " << argv[0] << " SRC DST\n";
        return 2;
    }
    int src = open(argv[1], O_RDONLY);
    int dst = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    struct stat st {};
    if (src < 0 || dst < 0 || fstat(src, &st) != 0) {
        std::cerr << "open: " << std::strerror(errno) << "\n";
        return 1;
    }
    constexpr size_t chunk = 256 * 1024;
    const off_t size = st.st_size;
    off_t next = 0;
    int active = 0, error = 0;
    long long copied = 0;

    aura::Engine engine;
    std::vector<aura::Buffer> bufs;
    for (int i = 0; i < 4; i++) bufs.push_back(engine.allocate_buffer(chunk));

    // One pipeline per buffer: read a chunk, write it from the read's callback, start the next
    // chunk from the write's callback.
    std::function<void(aura::Buffer &)> start = [&](aura::Buffer &buf) {
        if (error || next >= size) {
            active--;
            return;
        }
        off_t off = next;
        size_t len = static_cast<size_t>(std::min<off_t>(size - off, chunk));
        next += static_cast<off_t>(len);
        engine.read(src, buf, len, off, [&, off, len](aura::Request &, ssize_t n) {
            if (n != static_cast<ssize_t>(len)) {
                error = n < 0 ? static_cast<int>(-n) : EIO;
                active--;
                return;
            }
            engine.write(dst, buf, len, off, [&, len](aura::Request &, ssize_t w) {
                if (w != static_cast<ssize_t>(len)) error = w < 0 ? static_cast<int>(-w) : EIO;
                else copied += w;
                start(buf);
            });
        });
    };
    for (auto &b : bufs) {
        active++;
        start(b);
    }
    while (active > 0) engine.wait(1000);
    ssize_t synced = 1;
    engine.fsync(dst, [&](aura::Request &, ssize_t r) { synced = r; });
    while (synced == 1) engine.wait(1000);
    close(src);
    close(dst);
    if (error || synced != 0) {
        std::cerr << "copy failed: " << std::strerror(error ? error : static_cast<int>(-synced))
                  << "\n";
        return 1;
    }
    std::cout << "copied " << copied << " bytes\n";
    return 0;
}
