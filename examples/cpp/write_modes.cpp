// write_modes: buffered + fsync, O_DIRECT, and fdatasync writes, as coroutines.
//
//   write_modes DIR       (three files are written in DIR, checked, and removed)
#include <aura.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <string>
#include <vector>

enum class Mode { Buffered, Direct, DataSync };

static aura::Task<void> write_file(aura::Engine &engine, int fd, aura::Buffer &buf, Mode mode) {
    constexpr size_t piece = 65536;
    for (size_t off = 0; off < buf.size(); off += piece) {
        ssize_t n = co_await engine.async_write(fd, buf.as<char>() + off, piece,
                                                static_cast<off_t>(off));
        if (n != static_cast<ssize_t>(piece)) throw aura::Error(EIO, "short write");
    }
    if (mode == Mode::DataSync) co_await engine.async_fdatasync(fd);
    else co_await engine.async_fsync(fd);
}

static bool same_as(const std::string &path, const aura::Buffer &buf) {
    std::vector<char> got(buf.size());
    int fd = open(path.c_str(), O_RDONLY);
    bool ok = fd >= 0 && pread(fd, got.data(), got.size(), 0) == static_cast<ssize_t>(got.size()) &&
              std::memcmp(got.data(), buf.data(), got.size()) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        std::cerr << "usage: " << argv[0] << " DIR\n";
        return 2;
    }
    aura::Engine engine;
    auto buf = engine.allocate_buffer(256 * 1024); // page aligned: fine for O_DIRECT
    int status = 0;
    const struct {
        Mode mode;
        const char *name;
        int flags;
    } modes[] = {{Mode::Buffered, "buffered", 0},
                 {Mode::Direct, "direct", O_DIRECT},
                 {Mode::DataSync, "datasync", 0}};
    for (const auto &m : modes) {
        std::string path = std::string(argv[1]) + "/write_modes_cpp." + m.name;
        for (size_t i = 0; i < buf.size(); i++)
            buf.as<unsigned char>()[i] = static_cast<unsigned char>(i * 13 + m.flags + (i >> 10));
        int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | m.flags, 0644);
        if (fd < 0 && errno == EINVAL && m.mode == Mode::Direct) {
            std::cout << m.name << ": O_DIRECT not supported by this filesystem, not run\n";
            continue;
        }
        try {
            if (fd < 0) throw aura::Error(errno, "open");
            aura::sync_wait(engine, write_file(engine, fd, buf, m.mode));
            close(fd);
            if (!same_as(path, buf)) throw aura::Error(EIO, "data read back differs");
            std::cout << m.name << ": " << buf.size() << " bytes written, data verified\n";
        } catch (const aura::Error &e) {
            std::cerr << m.name << ": " << e.what() << "\n";
            status = 1;
        }
        unlink(path.c_str());
    }
    return status;
}
