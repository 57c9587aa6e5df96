// e2e helpers for the ZeroMQ, UDP and codec tests: every column of a stored row, ZeroMQ
// sockets bound to a port the OS picks, a UDP sender, and a PUSH sender on its own thread
// that counts what its socket accepted. Main thread only unless a comment says otherwise.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "tests/e2e/harness.h"

namespace e2e {

// ---- SQLite: every column --------------------------------------------------------------

struct full_row {
    int64_t id = 0;
    int64_t received_at = 0;
    std::optional<int64_t> ts;
    std::string source;
    std::optional<std::string> host;
    std::optional<int64_t> severity;
    std::optional<int64_t> facility;
    std::optional<std::string> app;
    std::optional<std::string> procid;
    std::optional<std::string> msgid;
    std::string message;
    std::optional<std::string> fields;
};

namespace detail {

inline std::optional<std::string> text_or_null(sqlite3_stmt* s, int col) {
    if (sqlite3_column_type(s, col) == SQLITE_NULL) {
        return std::nullopt;
    }
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, col));
    return std::string(p ? p : "", static_cast<size_t>(sqlite3_column_bytes(s, col)));
}

inline std::optional<int64_t> int_or_null(sqlite3_stmt* s, int col) {
    if (sqlite3_column_type(s, col) == SQLITE_NULL) {
        return std::nullopt;
    }
    return sqlite3_column_int64(s, col);
}

}  // namespace detail

// Rows of `logs` in id order; `where` (without the keyword) filters them. `bind` may bind
// parameters of `where` (?1, ?2, ...) as text.
inline std::vector<full_row> full_rows(sqlite_db& db, const std::string& where = "",
                                       const std::vector<std::string>& bind = {}) {
    const std::string sql =
        "SELECT id, received_at, ts, source, host, severity, facility, app, procid, msgid, "
        "message, fields FROM logs" +
        (where.empty() ? std::string() : " WHERE " + where) + " ORDER BY id";
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db.handle(), sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
        FAIL("cannot prepare '" << sql << "': " << sqlite3_errmsg(db.handle()));
    }
    for (size_t i = 0; i < bind.size(); ++i) {
        sqlite3_bind_text(s, static_cast<int>(i + 1), bind[i].data(),
                          static_cast<int>(bind[i].size()), SQLITE_TRANSIENT);
    }
    std::vector<full_row> out;
    int rc = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        full_row r;
        r.id = sqlite3_column_int64(s, 0);
        r.received_at = sqlite3_column_int64(s, 1);
        r.ts = detail::int_or_null(s, 2);
        r.source = detail::text_or_null(s, 3).value_or("");
        r.host = detail::text_or_null(s, 4);
        r.severity = detail::int_or_null(s, 5);
        r.facility = detail::int_or_null(s, 6);
        r.app = detail::text_or_null(s, 7);
        r.procid = detail::text_or_null(s, 8);
        r.msgid = detail::text_or_null(s, 9);
        r.message = detail::text_or_null(s, 10).value_or("");
        r.fields = detail::text_or_null(s, 11);
        out.push_back(std::move(r));
    }
    const std::string error = sqlite3_errmsg(db.handle());
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        FAIL("'" << sql << "' failed: " << error);
    }
    return out;
}

// One integer from a query such as "SELECT count(*) FROM logs WHERE ...".
inline int64_t query_int(sqlite_db& db, const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db.handle(), sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
        FAIL("cannot prepare '" << sql << "': " << sqlite3_errmsg(db.handle()));
    }
    const int rc = sqlite3_step(s);
    const int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    const std::string error = sqlite3_errmsg(db.handle());
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW) {
        FAIL("'" << sql << "' failed: " << error);
    }
    return v;
}

// A printable description of a row, for failure messages.
inline std::string describe(const full_row& r) {
    auto opt = [](const auto& v) -> std::string {
        if (!v) {
            return "NULL";
        }
        if constexpr (std::is_same_v<std::decay_t<decltype(*v)>, std::string>) {
            return "'" + *v + "'";
        } else {
            return std::to_string(*v);
        }
    };
    return "id=" + std::to_string(r.id) + " ts=" + opt(r.ts) + " source='" + r.source +
           "' host=" + opt(r.host) + " severity=" + opt(r.severity) +
           " facility=" + opt(r.facility) + " app=" + opt(r.app) + " procid=" + opt(r.procid) +
           " msgid=" + opt(r.msgid) + " message='" + r.message + "' fields=" + opt(r.fields);
}

// ---- metrics -----------------------------------------------------------------------------

// A sample from a parsed /metrics map; -1 when absent.
inline double sample(const metric_map& m, const std::string& key) {
    const auto it = m.find(normalise_metric_key(key));
    return it == m.end() ? -1 : it->second;
}

// ---- ZeroMQ ------------------------------------------------------------------------------

// Binds `socket` to 127.0.0.1 on a port the OS picks and returns the endpoint it got.
inline std::string bind_any_port(zmq::socket_t& socket) {
    socket.bind("tcp://127.0.0.1:*");
    return socket.get(zmq::sockopt::last_endpoint);
}

inline std::string to_string(const zmq::message_t& m) {
    return std::string(static_cast<const char*>(m.data()), m.size());
}

// A PUSH socket on its own thread that connects to `endpoint` and sends `count` messages
// made by `make(i)`, in order, each until ZeroMQ accepts it. A send that times out (the
// high-water mark is reached and the peer takes nothing) is counted and retried. The
// socket's sndhwm, send timeout and kernel send buffer are small, so a stalled receiver
// stops it soon. The socket stays open (messages still in its pipes keep going out) until
// the sender is destroyed, which drops what is left; destroy it before its context.
class zmq_push_sender {
  public:
    zmq_push_sender(zmq::context_t& context, std::string endpoint, uint64_t count,
                    std::function<std::string(uint64_t)> make, int sndhwm = 100,
                    int sndtimeo_ms = 100, int sndbuf_bytes = 64 * 1024)
        : context_(context),
          endpoint_(std::move(endpoint)),
          count_(count),
          make_(std::move(make)),
          sndhwm_(sndhwm),
          sndtimeo_ms_(sndtimeo_ms),
          sndbuf_bytes_(sndbuf_bytes) {
        thread_ = std::thread([this] { run(); });
    }
    ~zmq_push_sender() {
        stop_ = true;
        thread_.join();
    }
    zmq_push_sender(const zmq_push_sender&) = delete;
    zmq_push_sender& operator=(const zmq_push_sender&) = delete;

    // Messages ZeroMQ has accepted so far.
    uint64_t accepted() const { return accepted_.load(); }
    // Sends that timed out (EAGAIN), in all and since the last accepted message.
    uint64_t timeouts() const { return timeouts_.load(); }
    uint64_t timeouts_in_a_row() const { return in_a_row_.load(); }
    bool done() const { return done_.load(); }
    // Valid once done().
    const std::string& error() const { return error_; }

  private:
    void run() {
        try {
            zmq::socket_t socket(context_, zmq::socket_type::push);
            socket.set(zmq::sockopt::sndhwm, sndhwm_);
            socket.set(zmq::sockopt::sndtimeo, sndtimeo_ms_);
            socket.set(zmq::sockopt::sndbuf, sndbuf_bytes_);
            socket.set(zmq::sockopt::linger, 0);
            socket.connect(endpoint_);
            for (uint64_t i = 0; i < count_ && !stop_; ++i) {
                const std::string message = make_(i);
                bool sent = false;
                while (!sent && !stop_) {
                    sent = socket.send(zmq::buffer(message), zmq::send_flags::none).has_value();
                    if (!sent) {
                        ++timeouts_;
                        ++in_a_row_;
                    }
                }
                if (sent) {
                    in_a_row_ = 0;
                    ++accepted_;
                }
            }
            done_ = true;
            // What was accepted may still sit in ZeroMQ's pipes: keep the socket (and so
            // its messages) until the test is through with it, then drop whatever is left.
            while (!stop_) {
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            }
        } catch (const std::exception& e) {
            error_ = std::string("PUSH sender: ") + e.what();
            done_ = true;
        }
    }

    zmq::context_t& context_;
    const std::string endpoint_;
    const uint64_t count_;
    const std::function<std::string(uint64_t)> make_;
    const int sndhwm_;
    const int sndtimeo_ms_;
    const int sndbuf_bytes_;
    std::atomic<uint64_t> accepted_{0};
    std::atomic<uint64_t> timeouts_{0};
    std::atomic<uint64_t> in_a_row_{0};
    std::atomic<bool> done_{false};
    std::atomic<bool> stop_{false};
    std::string error_;
    std::thread thread_;
};

// ---- UDP ---------------------------------------------------------------------------------

// A UDP port on 127.0.0.1 that was free a moment ago (bind port 0, read it back, close).
inline uint16_t free_udp_port() {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    socklen_t len = sizeof(addr);
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    ::close(fd);
    return ntohs(addr.sin_port);
}

// A UDP socket connected to 127.0.0.1:port.
class udp_sender {
  public:
    explicit udp_sender(uint16_t port) {
        fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(port);
        REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    }
    ~udp_sender() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    udp_sender(const udp_sender&) = delete;
    udp_sender& operator=(const udp_sender&) = delete;

    // Sends one datagram; false with errno on failure (ECONNREFUSED: nobody listened when an
    // earlier datagram arrived).
    bool send(std::string_view datagram) {
        for (;;) {
            const ssize_t n = ::send(fd_, datagram.data(), datagram.size(), 0);
            if (n == static_cast<ssize_t>(datagram.size())) {
                return true;
            }
            if (n < 0 && (errno == EINTR || errno == ENOBUFS || errno == EAGAIN)) {
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
                continue;
            }
            return false;
        }
    }

  private:
    int fd_ = -1;
};

}  // namespace e2e
