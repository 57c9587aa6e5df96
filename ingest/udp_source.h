// udp_source: one event per datagram (or per line within it), read many datagrams per system
// call (recvmmsg). UDP cannot be paused: what arrives while the queue is full is dropped and
// counted (reason "queue_full"); datagrams the kernel dropped for lack of receive buffer are
// counted too (SO_RXQ_OVFL, reason "kernel"). One socket per io loop: a receiver's members are
// its lane's thread only.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <memory>
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
    // `loops`: the io_pool's loops (the home one first, as the TCP source takes them); with
    // more than one, each loop reads its own socket of one SO_REUSEPORT group on the address,
    // and the kernel spreads the senders over them.
    udp_source(std::string name, source_id id, asio::io_context& io, bounded_queue& queue,
               udp_source_config config, const std::vector<asio::io_context*>& loops = {});
    ~udp_source() override;

    void start() override;
    uint16_t port() const { return port_; }
    // Any thread: the datagrams each loop's socket has read, the home loop's first.
    std::vector<uint64_t> datagrams_per_loop() const;

private:
    struct receiver;

    void on_stop() noexcept override;
    // Opens and binds one socket (SO_REUSEPORT first when `reuse_port`); throws if it cannot.
    void open_socket(asio::ip::udp::socket& socket, const asio::ip::udp::endpoint& endpoint,
                     bool reuse_port);
    // Receive buffer, kernel drop counts, non-blocking; `warn`: say what the kernel refused.
    void tune_socket(asio::ip::udp::socket& socket, bool warn);
    asio::awaitable<void> receive_loop(receiver& r);
    // Reads every datagram ready now on `r`'s socket; false when nothing was ready.
    bool drain(receiver& r);
    void add_datagram(batch& b, std::string_view data);
    void seal_and_push(receiver& r);

    udp_source_config config_;
    std::vector<std::unique_ptr<receiver>> receivers_;  // one per lane, lane i's at i
    uint16_t port_ = 0;
};

}  // namespace sluice
