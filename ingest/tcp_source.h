// tcp_source: accepts TCP connections and frames each one's byte stream into batches.
// Runs as Asio coroutines on the io thread. Pausing is flow control: while the queue is full
// no connection reads, so the kernel's receive window fills and the senders stall.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>

#include <asio/ip/tcp.hpp>

#include "ingest/codecs/batch_decoder.h"
#include "ingest/framing.h"
#include "ingest/source.h"

namespace sluice {

struct tcp_source_config {
    std::string address = "127.0.0.1:5170";  // host:port to listen on
    framing framing_kind = framing::newline;   // newline | octet_counting
    codec_kind codec = codec_kind::text;       // text | json | syslog
    uint64_t max_line_bytes = 65536;           // longer lines are truncated and counted
    uint64_t max_connections = 1024;           // further connections are closed at once
    uint64_t read_bytes = 64 * 1024;           // bytes asked of the socket per read
};

class tcp_source final : public source {
public:
    tcp_source(std::string name, source_id id, asio::io_context& io, bounded_queue& queue,
               tcp_source_config config);

    void start() override;
    // The bound port (for address ":0" in tests). io thread, after start().
    uint16_t port() const { return port_; }
    const connection_counters* connections() const override { return &connection_counters_; }

private:
    void on_stop() noexcept override;
    // Opens, binds and listens (again, after the accept loop failed). Throws sluice::error.
    void listen();
    asio::awaitable<void> accept_loop();
    asio::awaitable<void> serve(std::shared_ptr<asio::ip::tcp::socket> socket);
    void refuse(asio::ip::tcp::socket& socket);

    tcp_source_config config_;
    asio::ip::tcp::acceptor acceptor_;
    std::unordered_set<std::shared_ptr<asio::ip::tcp::socket>> connections_;
    connection_counters connection_counters_;
    log_limiter accept_log_{5'000'000'000};
    log_limiter refuse_log_{5'000'000'000};
    uint16_t port_ = 0;
};

// Splits "host:port" ("[::1]:5170" too) into an endpoint. Throws sluice::error.
asio::ip::tcp::endpoint parse_tcp_endpoint(const std::string& address);

}  // namespace sluice
