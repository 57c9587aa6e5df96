// zmq_source: a ZeroMQ PULL or SUB socket read from the io thread, one event per message frame
// (or per line of a frame, with newline framing). The socket is driven by its ZMQ_FD in the event
// loop, no polling thread: the fd is edge-triggered, so the source drains until EAGAIN and
// re-checks ZMQ_EVENTS before it waits. Frames fill batches of about 64 KiB across messages; a
// frame that would overflow one is held, received, for the next. Pausing is flow control:
// messages stay in ZeroMQ's receive high-water mark and a PUSH sender blocks. io thread only.
// When the receive loop fails on a ZeroMQ error the supervisor restarts it on a new socket
// (bound or connected again): messages the old socket held and had not handed over are lost
// with it, as ZeroMQ offers no way to keep them.
#pragma once

#include <string>
#include <vector>

#include <asio/posix/stream_descriptor.hpp>
#include <zmq.hpp>

#include "ingest/codecs/batch_decoder.h"
#include "ingest/framing.h"
#include "ingest/source.h"

namespace sluice {

enum class zmq_source_socket { pull, sub };

struct zmq_source_config {
    std::string endpoint = "tcp://127.0.0.1:5171";  // ZeroMQ endpoint
    zmq_source_socket socket = zmq_source_socket::pull;
    bool bind = true;                        // bind, else connect
    std::vector<std::string> subscribe{""};  // SUB prefixes ("" = everything)
    message_framing framing = message_framing::message;
    codec_kind codec = codec_kind::text;
    uint64_t max_line_bytes = 65536;         // longer frames are truncated and counted
    int rcvhwm = 1000;                       // messages ZeroMQ holds before the sender blocks
};

class zmq_source final : public source {
public:
    zmq_source(std::string name, source_id id, asio::io_context& io, bounded_queue& queue,
               zmq::context_t& context, zmq_source_config config);
    ~zmq_source() override;

    void start() override;

private:
    void on_stop() noexcept override;
    // Makes the socket (again), sets its options, binds or connects, watches its ZMQ_FD.
    // Throws sluice::error.
    void open_socket();
    asio::awaitable<void> receive_loop();
    asio::awaitable<void> receive_messages();
    // Receives what is ready without blocking into one batch (up to ~64 KiB, or one larger
    // frame).
    std::shared_ptr<batch> receive_ready();
    bool readable();

    zmq_source_config config_;
    zmq::context_t& context_;
    zmq::socket_t socket_;
    bool socket_failed_ = false;  // a ZeroMQ error ended the last receive loop
    asio::posix::stream_descriptor fd_;
    batch_decoder decoder_;
    std::string topic_;      // SUB: the topic frame of the multipart message being read
    bool in_multipart_ = false;
    zmq::message_t held_;    // the frame last received, while holding_
    bool holding_ = false;   // held_ is received and not yet in a batch (it did not fit)
    size_t events_hint_ = 0;  // events to reserve in the next batch
};

}  // namespace sluice
