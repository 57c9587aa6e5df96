// tcp_source: accepts TCP connections, in TLS or not, and frames each one's byte stream into
// batches. The accept loop runs on the home loop; each connection is handed to the io thread
// (lane) with the fewest connections and is read, framed and decoded there, as Asio
// coroutines. Pausing is flow control: while the queue is full no connection on any lane
// reads, so the kernel's receive windows fill and the senders stall.
// A connection may have a watchdog (a coroutine on a timer of its own) that cuts it off when
// its TLS handshake takes too long or, with idle_timeout, when it completes no line for that
// long; time spent waiting for the queue is never held against it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include <asio/ip/tcp.hpp>

#include "ingest/codecs/batch_decoder.h"
#include "ingest/framing.h"
#include "ingest/source.h"
#include "ingest/tls.h"

namespace sluice {

struct tcp_source_config {
    std::string address = "127.0.0.1:5170";  // host:port to listen on
    framing framing_kind = framing::newline;   // newline | octet_counting
    codec_kind codec = codec_kind::text;       // text | json | syslog
    uint64_t max_line_bytes = 65536;           // longer lines are truncated and counted
    uint64_t max_connections = 1024;           // further connections are closed at once
    uint64_t read_bytes = 64 * 1024;           // bytes asked of the socket per read
    std::optional<tls_config> tls;             // TLS on every connection; none: plain TCP
    // A connection that completes no line for this long is closed; 0: never. Off by default:
    // rsyslog's plain-TCP forwarding loses a message when the server closed an idle connection.
    std::chrono::nanoseconds idle_timeout{0};
    // A TLS handshake must finish within this (10 s: fixed, not a config key; tests shorten it).
    std::chrono::nanoseconds handshake_timeout = std::chrono::seconds(10);
};

class tcp_source final : public source {
public:
    // Loads the TLS certificate and key now: throws sluice::error naming a file that is wrong.
    // Connections spread over `io` and `loops` (the io_pool's; `io` among them counts once).
    tcp_source(std::string name, source_id id, asio::io_context& io, bounded_queue& queue,
               tcp_source_config config, const std::vector<asio::io_context*>& loops = {});
    ~tcp_source() override;

    void start() override;
    // The bound port (for address ":0" in tests). Home thread, after start().
    uint16_t port() const { return port_; }
    const connection_counters* connections() const override { return &connection_counters_; }
    // Any thread: how many connections each lane (io thread) holds now, the home lane first.
    std::vector<size_t> connections_per_lane() const;

private:
    struct connection;  // tcp_source.cpp
    using time_point = std::chrono::steady_clock::time_point;
    // A lane's connections: the set is its thread's; the count is read by the acceptor.
    struct lane_connections {
        std::unordered_set<std::shared_ptr<connection>> open;
        std::atomic<size_t> count{0};
    };

    void on_stop() noexcept override;
    // Opens, binds and listens (again, after the accept loop failed). Throws sluice::error.
    void listen();
    asio::awaitable<void> accept_loop();
    void refuse(asio::ip::tcp::socket& socket);
    // The lane that gets the next connection: the one with the fewest.
    lane& pick_lane();
    // Home thread: `socket` belongs to `l`'s loop; the connection runs there from now on.
    void open_connection(asio::ip::tcp::socket socket, lane& l);
    // The connection's lane's thread: registers it there (for stop) and serves it.
    asio::awaitable<void> run_connection(std::shared_ptr<connection> c);
    asio::awaitable<void> serve(std::shared_ptr<connection> c);
    // The TLS handshake; false (counted in rejected_tls) when it failed or took too long.
    asio::awaitable<bool> handshake(connection& c);
    // Reads, frames and pushes until the stream ends, the source stops or the watchdog cuts
    // it off; then pushes the partial line. One loop for plain sockets and TLS streams.
    template <typename Stream>
    asio::awaitable<void> read_loop(Stream& stream, connection& c);
    // Waits for the connection's deadline, re-reading it on each wake (progress moves it
    // lazily), and cuts the connection off once it has passed.
    asio::awaitable<void> watch(std::shared_ptr<connection> c);
    // When the watchdog cuts `c` off, or nullopt when it has nothing (more) to watch.
    std::optional<time_point> deadline(const connection& c) const;
    void note_idle_close(const connection& c);

    tcp_source_config config_;
    std::unique_ptr<asio::ssl::context> tls_;  // null without TLS
    asio::ip::tcp::acceptor acceptor_;
    std::vector<std::unique_ptr<lane_connections>> lane_connections_;  // by lane index
    std::atomic<size_t> open_connections_{0};  // every lane's
    connection_counters connection_counters_;
    log_limiter accept_log_{5'000'000'000};
    log_limiter refuse_log_{5'000'000'000};
    log_limiter tls_log_{5'000'000'000};
    log_limiter idle_log_{5'000'000'000};
    uint16_t port_ = 0;
};

// Splits "host:port" ("[::1]:5170" too) into an endpoint. Throws sluice::error.
asio::ip::tcp::endpoint parse_tcp_endpoint(const std::string& address);

}  // namespace sluice
