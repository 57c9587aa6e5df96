// bare_baseline: the least a TCP-to-file relay can do, as the benchmark's yardstick. Listens on
// a port, accepts N connections, and gives each its own thread that read()s into a 1 MiB buffer
// and write()s it to one shared O_APPEND file. The only framing it does is to write whole lines,
// keeping a partial tail for the next read, so connections never interleave mid-line.
//
// Prints key=value lines: lines, bytes, accept_ns (first accept), end_ns (last close),
// elapsed_seconds between them, peak_rss_bytes and cpu_seconds (getrusage of this process).
//
//   bare_baseline --port P --connections N --out FILE

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>
#include "clock.h"

namespace {

using bench::realtime_ns;

constexpr std::size_t read_buffer_bytes = 1 << 20;

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "bare_baseline: %s: %s\n", what.c_str(), std::strerror(errno));
    std::exit(1);
}

void write_all(int fd, const char* data, std::size_t len) {
    while (len > 0) {
        const ssize_t n = ::write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            die("write");
        }
        data += n;
        len -= static_cast<std::size_t>(n);
    }
}

// Relays one connection until EOF; returns the lines it wrote.
std::uint64_t relay(int conn, int out, std::uint64_t& bytes) {
    std::vector<char> buf(read_buffer_bytes);
    std::size_t held = 0;  // bytes of a partial line at the front of buf
    std::uint64_t lines = 0;
    for (;;) {
        if (held == buf.size()) {
            buf.resize(buf.size() * 2);  // one line longer than the buffer
        }
        const ssize_t n = ::read(conn, buf.data() + held, buf.size() - held);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            die("read");
        }
        if (n == 0) {
            break;
        }
        const char* fresh = buf.data() + held;
        lines += static_cast<std::uint64_t>(std::count(fresh, fresh + n, '\n'));
        const std::size_t total = held + static_cast<std::size_t>(n);
        const char* last_nl = static_cast<const char*>(memrchr(buf.data(), '\n', total));
        const std::size_t whole = last_nl == nullptr ? 0 : last_nl - buf.data() + 1;
        write_all(out, buf.data(), whole);
        bytes += whole;
        held = total - whole;
        if (held > 0 && whole > 0) {
            std::memmove(buf.data(), buf.data() + whole, held);
        }
    }
    if (held > 0) {  // a connection that closes mid-line yields that partial line
        buf[held] = '\n';
        write_all(out, buf.data(), held + 1);
        bytes += held + 1;
        ++lines;
    }
    ::close(conn);
    return lines;
}

}  // namespace

int main(int argc, char** argv) {
    int port = 15171;
    std::size_t connections = 1;
    std::string out_path;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string arg = argv[i];
        if (arg == "--port") {
            port = std::atoi(argv[i + 1]);
        } else if (arg == "--connections") {
            connections = std::stoull(argv[i + 1]);
        } else if (arg == "--out") {
            out_path = argv[i + 1];
        } else {
            std::fprintf(stderr, "bare_baseline: unknown argument %s\n", arg.c_str());
            return 2;
        }
    }
    if (out_path.empty() || connections == 0) {
        std::fprintf(stderr, "usage: bare_baseline --port P --connections N --out FILE\n");
        return 2;
    }

    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    if (out < 0) {
        die("open " + out_path);
    }
    const int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
    const int one = 1;
    ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        die("bind");
    }
    if (::listen(lfd, 128) != 0) {
        die("listen");
    }
    std::printf("listening=%d\n", port);
    std::fflush(stdout);

    std::int64_t accept_ns = 0;
    std::vector<std::thread> threads;
    std::vector<std::uint64_t> lines(connections, 0);
    std::vector<std::uint64_t> bytes(connections, 0);
    for (std::size_t c = 0; c < connections; ++c) {
        const int conn = ::accept(lfd, nullptr, nullptr);
        if (conn < 0) {
            die("accept");
        }
        if (c == 0) {
            accept_ns = realtime_ns();
        }
        threads.emplace_back([&, c, conn] { lines[c] = relay(conn, out, bytes[c]); });
    }
    ::close(lfd);
    for (auto& t : threads) {
        t.join();
    }
    const std::int64_t end_ns = realtime_ns();
    ::close(out);

    std::uint64_t total_lines = 0;
    std::uint64_t total_bytes = 0;
    for (std::size_t c = 0; c < connections; ++c) {
        total_lines += lines[c];
        total_bytes += bytes[c];
    }
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    const double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
                       ru.ru_stime.tv_usec / 1e6;
    std::printf("lines=%llu\nbytes=%llu\naccept_ns=%lld\nend_ns=%lld\nelapsed_seconds=%.6f\n"
                "peak_rss_bytes=%lld\ncpu_seconds=%.3f\n",
                static_cast<unsigned long long>(total_lines),
                static_cast<unsigned long long>(total_bytes), static_cast<long long>(accept_ns),
                static_cast<long long>(end_ns), (end_ns - accept_ns) / 1e9,
                static_cast<long long>(ru.ru_maxrss) * 1024, cpu);
    return 0;
}
