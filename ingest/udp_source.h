// udp_source: one event per datagram (or per line within it), read many datagrams per system
// call (recvmmsg) on the io thread. UDP cannot be paused: what arrives while the queue is
// full is dropped and counted (reason "queue_full"); datagrams the kernel dropped for lack
// of receive buffer are counted too (SO_RXQ_OVFL, reason "kernel"). io thread only.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

#include <asio/ip/udp.hpp>

#include "ingest/codecs/batch_decoder.h"
#include "ingest/source.h"

namespace sluice {

enum class udp_framing { datagram, newline };

struct udp_source_config {
    std::string address = "127.0.0.1:5514";            // host:port to listen on
    udp_framing framing = udp_framing::datagram;        // datagram | newline
    codec_kind codec = codec_kind::text;
    uint64_t max_line_bytes = 65536;                    // longer: truncated, counted
    uint64_t receive_buffer_bytes = 64ull << 20;        // SO_RCVBUF: absorbs bursts
};

class udp_source final : public source {
public:
    udp_source(std::string name, source_id id, asio::io_context& io, bounded_queue& queue,
               udp_source_config config);

    void start() override;
    uint16_t port() const { return port_; }

private:
    void on_stop() noexcept override;
    asio::awaitable<void> receive_loop();
    // Reads every datagram ready now; false when nothing was ready.
    bool drain();
    void add_datagram(batch& b, std::string_view data);
    void seal_and_push();
    std::string peer_host() const;

    udp_source_config config_;
    asio::ip::udp::socket socket_;
    batch_decoder decoder_;
    std::vector<char> scratch_;  // recvmmsg buffers
    std::shared_ptr<batch> current_;
    sockaddr_storage peer_{};  // the current batch's sender
    socklen_t peer_len_ = 0;
    uint32_t kernel_drops_seen_ = 0;
    uint16_t port_ = 0;
};

}  // namespace sluice
