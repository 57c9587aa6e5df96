// udp_loadgen: the benchmark's UDP client. Builds the same N lines as loadgen (lines.h) into
// one buffer before the clock starts, then one thread sends them as N datagrams (one line
// each, without its '\n') from one connected socket to HOST:PORT, flat out: sendmmsg() with
// BATCH datagrams per call (--batch 1: send() per datagram), no pacing, blocking socket.
// UDP has no flow control: whatever the receiver cannot take in time is dropped by its kernel.
//
// Prints key=value lines: datagrams (sent), bytes (the lines with their '\n', as loadgen counts
// them), payload_bytes, start_ns, end_ns (CLOCK_REALTIME), send_seconds, send_cpu_seconds
// (this process's CPU from the first datagram on; on loopback that includes the receive path
// up to the receiver's socket queue, which the kernel runs in the sender's context) and
// send_errors
// (datagrams whose send failed, e.g. ECONNREFUSED from an earlier ICMP port unreachable;
// they are retried once, then counted and skipped).
//
//   udp_loadgen --logs DIR --datagrams N [--host H] [--port P] [--batch B] [--format F]

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "clock.h"
#include "lines.h"

namespace {

using bench::realtime_ns;
using bench::cpu_seconds;

[[noreturn]] void die(const std::string& what) { bench::die("udp_loadgen", what); }

}  // namespace

int main(int argc, char** argv) {
    std::string logs_dir;
    std::string host = "127.0.0.1";
    int port = 15172;
    std::size_t count = 1'000'000;
    std::size_t per_call = 64;
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
            port = std::stoi(value());
        } else if (arg == "--datagrams") {
            count = std::stoull(value());
        } else if (arg == "--batch") {
            per_call = std::max<std::size_t>(1, std::min<std::size_t>(1024, std::stoull(value())));
        } else if (arg == "--format") {
            const std::string f = value();
            if (!bench::parse_format(f, format)) {
                die("unknown format " + f);
            }
        } else {
            die("unknown argument " + arg);
        }
    }
    if (logs_dir.empty() || count == 0) {
        die("usage: udp_loadgen --logs DIR --datagrams N [--host H] [--port P] [--batch B] "
            "[--format F]");
    }

    std::vector<std::size_t> line_ends;
    const std::string buf = bench::generate(bench::read_source_lines("udp_loadgen", logs_dir),
                                            count, format, line_ends);

    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        die(std::string("socket: ") + std::strerror(errno));
    }
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(port));
    if (::inet_pton(AF_INET, host.c_str(), &to.sin_addr) != 1) {
        die("not an IPv4 address: " + host);
    }
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {
        die(std::string("connect: ") + std::strerror(errno));
    }

    // Every datagram's iovec, built before the clock starts.
    std::vector<iovec> iov(count);
    std::vector<mmsghdr> msgs(count);
    std::size_t begin = 0;
    for (std::size_t i = 0; i < count; ++i) {
        iov[i] = {const_cast<char*>(buf.data()) + begin, line_ends[i] - 1 - begin};
        msgs[i] = {};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        begin = line_ends[i];
    }

    std::size_t errors = 0;
    bool retried = false;
    const double cpu0 = cpu_seconds();
    const std::int64_t start_ns = realtime_ns();
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t next = 0; next < count;) {
        const auto want = static_cast<unsigned>(std::min(per_call, count - next));
        int n = 0;
        if (per_call == 1) {
            n = ::send(fd, iov[next].iov_base, iov[next].iov_len, 0) < 0 ? -1 : 1;
        } else {
            n = ::sendmmsg(fd, &msgs[next], want, 0);
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == ENOBUFS || errno == EAGAIN) {
                continue;  // local queue full for a moment: try again, still no pacing
            }
            if (!retried) {  // ECONNREFUSED and the like are reported once per ICMP: retry once
                retried = true;
                continue;
            }
            ++errors;
            ++next;
            retried = false;
            continue;
        }
        retried = false;
        next += static_cast<std::size_t>(n);
    }
    const auto t1 = std::chrono::steady_clock::now();
    const std::int64_t end_ns = realtime_ns();
    ::close(fd);
    std::printf("datagrams=%zu\nbytes=%zu\npayload_bytes=%zu\nstart_ns=%lld\nend_ns=%lld\n"
                "send_seconds=%.6f\nsend_cpu_seconds=%.3f\nsend_errors=%zu\n",
                count - errors, buf.size(), buf.size() - count,
                static_cast<long long>(start_ns), static_cast<long long>(end_ns),
                std::chrono::duration<double>(t1 - t0).count(), cpu_seconds() - cpu0, errors);
    return 0;
}
