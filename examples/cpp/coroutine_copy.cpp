// coroutine_copy: the file copy coroutine (C++20 co_await), driven by aura::sync_wait.
//
//   coroutine_copy SRC DST
//
// copy_file below is the coroutine from the project's quick start; main opens the files, runs
// it to completion on the engine, and reports the size of DST.
#include <aura.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iostream>

aura::Task<void> copy_file(aura::Engine& engine, int src, int dst) {
    auto buf = engine.allocate_buffer(65536);
    for (off_t off = 0; ; off += 65536) {
        ssize_t n = co_await engine.async_read(src, buf, 65536, off);
        if (n <= 0) break;
        co_await engine.async_write(dst, buf, n, off);
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        std::cerr << "usage: " << argv[0] << " SRC DST\n";
        return 2;
    }
    int src = open(argv[1], O_RDONLY);
    int dst = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (src < 0 || dst < 0) {
        std::cerr << "open: " << std::strerror(errno) << "\n";
        return 1;
    }
    try {
        aura::Engine engine;
        aura::sync_wait(engine, copy_file(engine, src, dst));
    } catch (const aura::Error &e) {
        std::cerr << "copy failed: " << e.what() << "\n";
        return 1;
    }
    struct stat st {};
    fstat(dst, &st);
    std::cout << "copied " << st.st_size << " bytes\n";
    close(src);
    close(dst);
    return 0;
}
