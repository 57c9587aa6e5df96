// soak_sender: the soak benchmark's paced client (bench/soak.py). Sends RATE lines a second,
// in ticks of TICK_MS, each line tagged with its source and a unique sequence number, until
// SIGTERM or SIGINT (or --seconds), then finishes cleanly and writes what it sent to --report.
//
// Line SEQ (0, 1, 2, ...): "TAG SEQ10 TEXT", where "SEQ10 TEXT" is line SEQ of bench/lines.h's
// text format (a 10-digit sequence number, then source line SEQ mod n of
// tests/data/real_logs/*.log, cut to 250 bytes or padded to 80). So every line is distinct
// and names its sender; a receiver that got line SEQ can be checked exactly.
//
//   tcp   one connection to HOST:PORT, newline-terminated lines, blocking write()s: while
//         sluice pushes back, the sender blocks and falls behind, then catches up (lossless).
//   udp   one connected socket, one datagram per line (no '\n'), sendmmsg() per tick. With
//         --syslog each datagram is an RFC 3164 message: "<134>Mmm dd hh:mm:ss soak
//         soak[PID]: TAG SEQ10 TEXT" (the current UTC time). A datagram counts as sent only
//         once the kernel took it; failed sends (ECONNREFUSED, ENOBUFS) are retried.
//   zmq   one PUSH socket connected to ENDPOINT, one message per line (no '\n'), blocking
//         sends at the default ZMQ_SNDHWM; at the end an infinite linger and zmq_ctx_term, which
//         return once every message has gone to the peer.
//   file  appends lines ('\n'-terminated) to PATH with one O_APPEND write() per tick; at each
//         of the --rotate-at times (seconds from the start, comma list) it renames PATH to
//         PATH.1, PATH.2, ... (logrotate's `create`) and goes on in a new PATH.
//
// The report (key=value lines): proto, tag, sent (lines 0..sent-1 went out), bytes,
// send_errors (failed attempts, retried), seconds, cpu_seconds, max_behind (most lines the
// sender was ever behind its schedule), rotations.
//
//   soak_sender --proto tcp|udp|zmq|file --tag TAG --rate R --logs DIR --report FILE
//               [--host H --port P | --endpoint E | --path P [--rotate-at T1,T2]]
//               [--syslog] [--seconds S] [--tick-ms MS]

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "clock.h"
#include "lines.h"

namespace {

[[noreturn]] void die(const std::string& what) { bench::die("soak_sender", what); }

volatile sig_atomic_t stop_requested = 0;

extern "C" void on_stop(int) { stop_requested = 1; }

void install_handlers() {
    struct sigaction sa{};
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: a blocked write() returns EINTR and we look at the flag
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);
}

// Writes all of [data, data+len): a signal never leaves a partial line behind.
void write_all(int fd, const char* data, std::size_t len, const char* what) {
    while (len > 0) {
        const ssize_t n = ::write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            die(std::string(what) + ": " + std::strerror(errno));
        }
        data += n;
        len -= static_cast<std::size_t>(n);
    }
}

int connect_socket(int type, const std::string& host, int port) {
    const int fd = ::socket(AF_INET, type, 0);
    if (fd < 0) {
        die(std::string("socket: ") + std::strerror(errno));
    }
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(port));
    if (::inet_pton(AF_INET, host.c_str(), &to.sin_addr) != 1) {
        die("not an IPv4 address: " + host);
    }
    while (::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {
        if (errno != EINTR) {
            die("connect " + host + ":" + std::to_string(port) + ": " + std::strerror(errno));
        }
    }
    return fd;
}

std::string syslog_header() {
    static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    const time_t now = ::time(nullptr);
    tm t{};
    gmtime_r(&now, &t);
    char head[96];
    const int n = std::snprintf(head, sizeof head, "<134>%s %2d %02d:%02d:%02d soak soak[%d]: ",
                                months[t.tm_mon], t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
                                static_cast<int>(::getpid()));
    return std::string(head, static_cast<std::size_t>(n));
}

std::vector<double> parse_list(const std::string& s) {
    std::vector<double> out;
    std::size_t pos = 0;
    while (pos < s.size()) {
        const std::size_t comma = s.find(',', pos);
        const std::string item = s.substr(pos, comma == std::string::npos ? std::string::npos
                                                                           : comma - pos);
        if (!item.empty()) {
            out.push_back(std::stod(item));
        }
        if (comma == std::string::npos) {
            break;
        }
        pos = comma + 1;
    }
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    std::string proto;
    std::string tag;
    std::string logs_dir;
    std::string report_path;
    std::string host = "127.0.0.1";
    int port = 0;
    std::string endpoint;
    std::string path;
    std::string rotate_at_text;
    bool syslog = false;
    double rate = 1000;
    double seconds = 0;  // 0: until a signal
    int tick_ms = 10;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                die("missing value for " + arg);
            }
            return argv[++i];
        };
        if (arg == "--proto") {
            proto = value();
        } else if (arg == "--tag") {
            tag = value();
        } else if (arg == "--logs") {
            logs_dir = value();
        } else if (arg == "--report") {
            report_path = value();
        } else if (arg == "--host") {
            host = value();
        } else if (arg == "--port") {
            port = std::stoi(value());
        } else if (arg == "--endpoint") {
            endpoint = value();
        } else if (arg == "--path") {
            path = value();
        } else if (arg == "--rotate-at") {
            rotate_at_text = value();
        } else if (arg == "--syslog") {
            syslog = true;
        } else if (arg == "--rate") {
            rate = std::stod(value());
        } else if (arg == "--seconds") {
            seconds = std::stod(value());
        } else if (arg == "--tick-ms") {
            tick_ms = std::max(1, std::stoi(value()));
        } else {
            die("unknown argument " + arg);
        }
    }
    const bool known = proto == "tcp" || proto == "udp" || proto == "zmq" || proto == "file";
    if (!known || tag.empty() || logs_dir.empty() || report_path.empty() || rate <= 0 ||
        (proto == "tcp" && port == 0) || (proto == "udp" && port == 0) ||
        (proto == "zmq" && endpoint.empty()) || (proto == "file" && path.empty())) {
        die("usage: soak_sender --proto tcp|udp|zmq|file --tag TAG --rate R --logs DIR "
            "--report FILE [--host H --port P | --endpoint E | --path P [--rotate-at T1,T2]] "
            "[--syslog] [--seconds S] [--tick-ms MS]");
    }
    install_handlers();
    const bench::source_lines src = bench::read_source_lines("soak_sender", logs_dir);
    const std::vector<double> rotate_at = parse_list(rotate_at_text);
    const std::string prefix = tag + " ";

    int fd = -1;
    std::unique_ptr<zmq::context_t> context;
    std::unique_ptr<zmq::socket_t> push;
    if (proto == "tcp") {
        fd = connect_socket(SOCK_STREAM, host, port);
    } else if (proto == "udp") {
        fd = connect_socket(SOCK_DGRAM, host, port);
    } else if (proto == "zmq") {
        context = std::make_unique<zmq::context_t>(1);
        push = std::make_unique<zmq::socket_t>(*context, zmq::socket_type::push);
        push->set(zmq::sockopt::linger, -1);
        push->connect(endpoint);
    } else {
        fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) {
            die("open " + path + ": " + std::strerror(errno));
        }
    }

    std::uint64_t sent = 0;
    std::uint64_t bytes = 0;
    std::uint64_t send_errors = 0;
    std::uint64_t max_behind = 0;
    std::size_t rotations = 0;
    std::string buf;
    std::vector<std::size_t> ends;  // per line in buf: offset past its '\n'
    std::vector<iovec> iov;
    std::vector<mmsghdr> msgs;
    const double cpu0 = bench::cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    auto next_tick = t0;
    for (;;) {
        const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
                                   .count();
        if (stop_requested || (seconds > 0 && elapsed >= seconds)) {
            break;
        }
        if (proto == "file" && rotations < rotate_at.size() && elapsed >= rotate_at[rotations]) {
            const std::string to = path + "." + std::to_string(rotations + 1);
            if (::rename(path.c_str(), to.c_str()) != 0) {
                die("rename " + path + " " + to + ": " + std::strerror(errno));
            }
            ::close(fd);
            fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            if (fd < 0) {
                die("open " + path + ": " + std::strerror(errno));
            }
            ++rotations;
        }
        const auto due = static_cast<std::uint64_t>(rate * elapsed);
        if (due > sent) {
            max_behind = std::max(max_behind, due - sent);
            buf.clear();
            ends.clear();
            const std::string head = syslog ? syslog_header() : std::string();
            for (std::uint64_t seq = sent; seq < due; ++seq) {
                buf.append(head);
                buf.append(prefix);
                bench::detail::append_text_line(buf, src.lines[seq % src.lines.size()],
                                                static_cast<std::size_t>(seq));
                buf.push_back('\n');
                ends.push_back(buf.size());
            }
            const std::size_t n = ends.size();
            if (proto == "tcp" || proto == "file") {
                write_all(fd, buf.data(), buf.size(), proto == "tcp" ? "write" : "write file");
            } else if (proto == "udp") {
                iov.resize(n);
                msgs.resize(n);
                std::size_t begin = 0;
                for (std::size_t k = 0; k < n; ++k) {
                    iov[k] = {buf.data() + begin, ends[k] - 1 - begin};
                    msgs[k] = {};
                    msgs[k].msg_hdr.msg_iov = &iov[k];
                    msgs[k].msg_hdr.msg_iovlen = 1;
                    begin = ends[k];
                }
                for (std::size_t next = 0; next < n;) {
                    const auto want = static_cast<unsigned>(std::min<std::size_t>(64, n - next));
                    const int got = ::sendmmsg(fd, &msgs[next], want, 0);
                    if (got < 0) {
                        if (errno != EINTR) {
                            ++send_errors;  // ENOBUFS, ECONNREFUSED, ...: the same one again
                            std::this_thread::sleep_for(std::chrono::milliseconds(1));
                        }
                        continue;
                    }
                    next += static_cast<std::size_t>(got);
                }
            } else {
                std::size_t begin = 0;
                for (std::size_t k = 0; k < n; ++k) {
                    zmq::message_t message(buf.data() + begin, ends[k] - 1 - begin);
                    for (;;) {
                        try {
                            push->send(message, zmq::send_flags::none);
                            break;
                        } catch (const zmq::error_t& e) {
                            if (e.num() != EINTR) {
                                die(std::string("zmq send: ") + e.what());
                            }
                        }
                    }
                    begin = ends[k];
                }
            }
            sent = due;
            bytes += buf.size();
        }
        next_tick += std::chrono::milliseconds(tick_ms);
        const auto now = std::chrono::steady_clock::now();
        if (next_tick < now) {
            next_tick = now;  // fell behind (blocked): send what is due at once
        } else {
            std::this_thread::sleep_until(next_tick);
        }
    }
    if (push) {
        push->close();
        context->close();  // zmq_ctx_term: waits out the linger, i.e. until all is delivered
    }
    if (fd >= 0) {
        if (proto == "tcp") {
            ::shutdown(fd, SHUT_WR);
        }
        ::close(fd);
    }
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    FILE* out = std::fopen(report_path.c_str(), "w");
    if (out == nullptr) {
        die("cannot write " + report_path);
    }
    std::fprintf(out,
                 "proto=%s\ntag=%s\nsent=%llu\nbytes=%llu\nsend_errors=%llu\nseconds=%.3f\n"
                 "cpu_seconds=%.3f\nmax_behind=%llu\nrotations=%zu\n",
                 proto.c_str(), tag.c_str(), static_cast<unsigned long long>(sent),
                 static_cast<unsigned long long>(bytes),
                 static_cast<unsigned long long>(send_errors), wall,
                 bench::cpu_seconds() - cpu0, static_cast<unsigned long long>(max_behind),
                 rotations);
    std::fclose(out);
    return 0;
}
