// loadgen: the benchmark's TCP client. Builds L distinct lines of 80-250 bytes from real
// logs (cycled, numbered, padded or cut deterministically) into one buffer before the clock
// starts, then sends them over N connections, one thread each, with large write() calls.
// With --out FILE it also (or, with --no-send, only) writes the same lines to FILE.
//
// Prints key=value lines: lines, bytes, connections, start_ns, end_ns (CLOCK_REALTIME, so the
// orchestrator can compare them with its own clock) and send_seconds.
//
//   loadgen --logs DIR --lines L [--host H] [--port P] [--connections N] [--out FILE] [--no-send]

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

namespace {

constexpr std::size_t min_line_bytes = 80;   // without the '\n'
constexpr std::size_t max_line_bytes = 250;  // without the '\n'
constexpr std::size_t write_chunk_bytes = 4 << 20;

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "loadgen: %s\n", what.c_str());
    std::exit(1);
}

std::int64_t realtime_ns() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// Every non-empty line of every *.log file in dir, files in name order, '\r' stripped.
std::vector<std::string> read_source_lines(const std::string& dir) {
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        if (entry.is_regular_file() && entry.path().extension() == ".log") {
            files.push_back(entry.path());
        }
    }
    std::sort(files.begin(), files.end());
    std::vector<std::string> lines;
    for (const auto& path : files) {
        std::ifstream in(path, std::ios::binary);
        std::string line;
        while (std::getline(in, line)) {
            if (!line.empty() && line.back() == '\r') {
                line.pop_back();
            }
            if (!line.empty()) {
                lines.push_back(std::move(line));
            }
        }
    }
    if (lines.empty()) {
        die("no lines found in " + dir + "/*.log");
    }
    return lines;
}

// Line i: a 10-digit sequence number, a space, then source line i mod n; cut to 250 bytes, or
// padded to 80 by repeating the source text after " | ". Deterministic for a given log set.
std::string generate(const std::vector<std::string>& src, std::size_t count,
                     std::vector<std::size_t>& line_ends) {
    std::string buf;
    buf.reserve(count * 160);
    line_ends.reserve(count);
    char prefix[32];
    for (std::size_t i = 0; i < count; ++i) {
        const std::string& body = src[i % src.size()];
        const int n = std::snprintf(prefix, sizeof prefix, "%010zu ", i);
        const std::size_t start = buf.size();
        buf.append(prefix, static_cast<std::size_t>(n));
        buf.append(body, 0, max_line_bytes - static_cast<std::size_t>(n));
        if (buf.size() - start < min_line_bytes) {
            buf.append(" | ");
            for (std::size_t k = 0; buf.size() - start < min_line_bytes; ++k) {
                buf.push_back(body[k % body.size()]);
            }
        }
        buf.push_back('\n');
        line_ends.push_back(buf.size());
    }
    return buf;
}

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
            "[--out FILE] [--no-send]");
    }

    std::vector<std::size_t> line_ends;
    const std::string buf = generate(read_source_lines(logs_dir), lines, line_ends);

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
                "send_seconds=%.6f\n",
                lines, buf.size(), connections, static_cast<long long>(start_ns),
                static_cast<long long>(end_ns), std::chrono::duration<double>(t1 - t0).count());
    return 0;
}
