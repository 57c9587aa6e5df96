// loadgen: the benchmark's TCP client. Builds L distinct lines of 80-250 bytes from real
// logs (cycled, numbered, padded or cut deterministically; see lines.h) into one buffer before
// the clock starts, then sends them over N connections, one thread each, with large write()
// calls. With --out FILE it also (or, with --no-send, only) writes the same lines to FILE.
// --format json|syslog5424|syslog3164 wraps each text line in a JSON object or a syslog header
// (lines.h); the default is text.
//
// Prints key=value lines: lines, bytes, connections, start_ns, end_ns (CLOCK_REALTIME, so the
// orchestrator can compare them with its own clock), send_seconds and send_cpu_seconds (this
// process's CPU from the first byte on, generation excluded).
//
//   loadgen --logs DIR --lines L [--host H] [--port P] [--connections N] [--format F]
//           [--out FILE] [--no-send]

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "clock.h"
#include "lines.h"

namespace {

using bench::realtime_ns;
using bench::cpu_seconds;

constexpr std::size_t write_chunk_bytes = 4 << 20;

[[noreturn]] void die(const std::string& what) { bench::die("loadgen", what); }

int connect_to(const std::string& host, const std::string& port) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
        die("getaddrinfo " + host + ":" + port + ": " + gai_strerror(rc));
    }
    int fd = -1;
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
        fd = ::socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) {
            continue;
        }
        if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            break;
        }
        ::close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        die("connect " + host + ":" + port + ": " + std::strerror(errno));
    }
    return fd;
}

void send_all(int fd, const char* data, std::size_t len) {
    while (len > 0) {
        const std::size_t want = std::min(len, write_chunk_bytes);
        const ssize_t n = ::write(fd, data, want);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            die(std::string("write: ") + std::strerror(errno));
        }
        data += n;
        len -= static_cast<std::size_t>(n);
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::string logs_dir;
    std::string host = "127.0.0.1";
    std::string port = "15170";
    std::string out_path;
    std::size_t lines = 2'000'000;
    std::size_t connections = 1;
    bool send = true;
    bench::line_format format = bench::line_format::text;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                die("missing value for " + arg);
            }
            return argv[++i];
        };
        if (arg == "--logs") {
            logs_dir = value();
        } else if (arg == "--host") {
            host = value();
        } else if (arg == "--port") {
            port = value();
        } else if (arg == "--lines") {
            lines = std::stoull(value());
        } else if (arg == "--connections") {
            connections = std::stoull(value());
        } else if (arg == "--format") {
            const std::string f = value();
            if (!bench::parse_format(f, format)) {
                die("unknown format " + f + " (text, json, syslog5424, syslog3164)");
            }
        } else if (arg == "--out") {
            out_path = value();
        } else if (arg == "--no-send") {
            send = false;
        } else {
            die("unknown argument " + arg);
        }
    }
    if (logs_dir.empty() || lines == 0 || connections == 0) {
        die("usage: loadgen --logs DIR --lines L [--host H] [--port P] [--connections N] "
            "[--format F] [--out FILE] [--no-send]");
    }

    std::vector<std::size_t> line_ends;
    const std::string buf =
        bench::generate(bench::read_source_lines("loadgen", logs_dir), lines, format, line_ends);

    if (!out_path.empty()) {
        std::ofstream out(out_path, std::ios::binary | std::ios::trunc);
        out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
        if (!out) {
            die("cannot write " + out_path);
        }
    }
    if (!send) {
        std::printf("lines=%zu\nbytes=%zu\n", lines, buf.size());
        return 0;
    }

    // Connection c sends lines [c*L/N, (c+1)*L/N): contiguous slices, cut at line ends.
    std::vector<int> fds;
    std::vector<std::pair<std::size_t, std::size_t>> slices;
    for (std::size_t c = 0; c < connections; ++c) {
        const std::size_t first = c * lines / connections;
        const std::size_t last = (c + 1) * lines / connections;
        const std::size_t begin = first == 0 ? 0 : line_ends[first - 1];
        const std::size_t end = last == 0 ? 0 : line_ends[last - 1];
        slices.emplace_back(begin, end);
        fds.push_back(connect_to(host, port));
    }

    const double cpu0 = cpu_seconds();
    const std::int64_t start_ns = realtime_ns();
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (std::size_t c = 0; c < connections; ++c) {
        threads.emplace_back([&, c] {
            send_all(fds[c], buf.data() + slices[c].first, slices[c].second - slices[c].first);
            ::shutdown(fds[c], SHUT_WR);
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    const auto t1 = std::chrono::steady_clock::now();
    const std::int64_t end_ns = realtime_ns();
    // Data already written stays in the kernel's send buffer and still goes out after close.
    for (int fd : fds) {
        ::close(fd);
    }
    std::printf("lines=%zu\nbytes=%zu\nconnections=%zu\nstart_ns=%lld\nend_ns=%lld\n"
                "send_seconds=%.6f\nsend_cpu_seconds=%.3f\n",
                lines, buf.size(), connections, static_cast<long long>(start_ns),
                static_cast<long long>(end_ns), std::chrono::duration<double>(t1 - t0).count(),
                cpu_seconds() - cpu0);
    return 0;
}
