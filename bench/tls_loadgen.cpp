// tls_loadgen: the TLS benchmark's client, loadgen's twin (the same L lines of bench/lines.h,
// built into one buffer before the clock starts, sent over N connections, one thread each)
// that speaks TLS with OpenSSL, or plain TCP with --plain, so both runs of bench/tls.sh use
// one sender and differ only in TLS. With TLS it checks sluice's certificate against --ca and
// for 127.0.0.1, completes every handshake before the clock starts, sends in 4 MiB SSL_write
// calls, then sends close_notify and reads to the end, so nothing it sent is reset away.
//
// Prints key=value lines: lines, bytes, connections, start_ns, end_ns (CLOCK_REALTIME),
// send_seconds, send_cpu_seconds (this process's CPU from the first byte on).
//
//   tls_loadgen --logs DIR --lines L [--port P] [--connections N] (--ca FILE | --plain)
//               [--out FILE --no-send]

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "clock.h"
#include "lines.h"

namespace {

constexpr std::size_t write_chunk_bytes = 4 << 20;

[[noreturn]] void die(const std::string& what) { bench::die("tls_loadgen", what); }

[[noreturn]] void die_ssl(const std::string& what) {
    char reason[256];
    ERR_error_string_n(ERR_get_error(), reason, sizeof reason);
    die(what + ": " + reason);
}

int connect_to(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        die("connect 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(errno));
    }
    return fd;
}

SSL_CTX* client_context(const std::string& ca) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == nullptr || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        die_ssl("SSL_CTX_new");
    }
    if (SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr) != 1) {
        die_ssl("cannot load " + ca);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_CTX_get0_param(ctx), "127.0.0.1");
    return ctx;
}

// One connection: a socket, and its TLS session unless plain.
struct connection {
    int fd = -1;
    SSL* ssl = nullptr;

    void handshake(SSL_CTX* ctx) {
        ssl = SSL_new(ctx);
        if (ssl == nullptr || SSL_set_fd(ssl, fd) != 1 || SSL_connect(ssl) != 1) {
            die_ssl("TLS handshake");
        }
    }

    void send_all(const char* data, std::size_t len) {
        while (len > 0) {
            const std::size_t want = std::min(len, write_chunk_bytes);
            std::size_t n = 0;
            if (ssl != nullptr) {
                if (SSL_write_ex(ssl, data, want, &n) != 1) {
                    die_ssl("SSL_write");
                }
            } else {
                const ssize_t w = ::write(fd, data, want);
                if (w < 0 && errno == EINTR) {
                    continue;
                }
                if (w < 0) {
                    die(std::string("write: ") + std::strerror(errno));
                }
                n = static_cast<std::size_t>(w);
            }
            data += n;
            len -= n;
        }
    }

    // close_notify and FIN, then read to the end: a socket closed with unread data would
    // reset the connection and lose what sluice had not read yet.
    void finish() {
        if (ssl != nullptr) {
            SSL_shutdown(ssl);
        }
        ::shutdown(fd, SHUT_WR);
        char sink[4096];
        while (::read(fd, sink, sizeof sink) > 0) {
        }
        if (ssl != nullptr) {
            SSL_free(ssl);
        }
        ::close(fd);
    }
};

}  // namespace

int main(int argc, char** argv) {
    std::string logs_dir;
    std::string ca;
    std::string out_path;
    std::uint16_t port = 15170;
    std::size_t lines = 2'000'000;
    std::size_t connections = 1;
    bool plain = false;
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
        } else if (arg == "--port") {
            port = static_cast<std::uint16_t>(std::stoul(value()));
        } else if (arg == "--lines") {
            lines = std::stoull(value());
        } else if (arg == "--connections") {
            connections = std::stoull(value());
        } else if (arg == "--ca") {
            ca = value();
        } else if (arg == "--plain") {
            plain = true;
        } else if (arg == "--out") {
            out_path = value();
        } else if (arg == "--no-send") {
            send = false;
        } else {
            die("unknown argument " + arg);
        }
    }
    if (logs_dir.empty() || lines == 0 || connections == 0 || (send && plain == !ca.empty())) {
        die("usage: tls_loadgen --logs DIR --lines L [--port P] [--connections N] "
            "(--ca FILE | --plain) [--out FILE --no-send]");
    }

    std::vector<std::size_t> line_ends;
    const std::string buf = bench::generate(bench::read_source_lines("tls_loadgen", logs_dir),
                                            lines, bench::line_format::text, line_ends);
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

    SSL_CTX* ctx = plain ? nullptr : client_context(ca);
    std::vector<connection> conns(connections);
    std::vector<std::pair<std::size_t, std::size_t>> slices;
    for (std::size_t c = 0; c < connections; ++c) {
        const std::size_t first = c * lines / connections;
        const std::size_t last = (c + 1) * lines / connections;
        slices.emplace_back(first == 0 ? 0 : line_ends[first - 1], line_ends[last - 1]);
        conns[c].fd = connect_to(port);
        if (ctx != nullptr) {
            conns[c].handshake(ctx);
        }
    }

    const double cpu0 = bench::cpu_seconds();
    const std::int64_t start_ns = bench::realtime_ns();
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (std::size_t c = 0; c < connections; ++c) {
        threads.emplace_back([&, c] {
            conns[c].send_all(buf.data() + slices[c].first, slices[c].second - slices[c].first);
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    const auto t1 = std::chrono::steady_clock::now();
    const std::int64_t end_ns = bench::realtime_ns();
    const double send_cpu = bench::cpu_seconds() - cpu0;
    for (auto& c : conns) {
        c.finish();
    }
    std::printf(
        "lines=%zu\nbytes=%zu\nconnections=%zu\nstart_ns=%lld\nend_ns=%lld\n"
        "send_seconds=%.6f\nsend_cpu_seconds=%.3f\n",
        lines, buf.size(), connections, static_cast<long long>(start_ns),
        static_cast<long long>(end_ns), std::chrono::duration<double>(t1 - t0).count(), send_cpu);
    if (ctx != nullptr) {
        SSL_CTX_free(ctx);
    }
    return 0;
}
