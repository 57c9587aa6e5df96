// zmq_sink: forwards events over ZeroMQ, one frame per event (text: the line; json: the event as
// JSON), or with newline framing many events per frame, each ending in '\n', up to ~64 KiB a frame
// (for a zmq source with framing = "newline" at the other end). PUSH connects to every endpoint, so
// ZeroMQ spreads the load over several aggregators; PUB fans out to subscribers. When PUSH peers
// stop taking messages (their high-water marks are reached) the sink waits, its batch stays queued,
// and backpressure reaches the sources. The socket is created by the constructor and then used only
// on the sink's thread. A frame sent cannot be taken back, so a write that fails half way (a
// zmq error, EINTR) records how far it got, and the retry sends only what is left: no event
// is sent twice.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "ingest/framing.h"
#include "sinks/sink.h"

namespace sluice {

enum class zmq_sink_socket { push, pub };
enum class zmq_sink_format { text, json };

struct zmq_sink_config {
    std::vector<std::string> endpoints{"tcp://127.0.0.1:6000"};  // connected to, each
    zmq_sink_socket socket = zmq_sink_socket::push;
    zmq_sink_format format = zmq_sink_format::text;
    message_framing framing = message_framing::message;
    int sndhwm = 1000;  // messages ZeroMQ holds per peer before the sink waits
};

class zmq_sink final : public sink {
public:
    zmq_sink(std::string name, batch_config batch, zmq_sink_config config,
             zmq::context_t& context, std::vector<std::string> source_names);

    ~zmq_sink() override { stop_thread(); }

    // Tests only: called before each frame is handed to ZeroMQ with the number of frames this
    // sink handed over so far; it may throw (a zmq::error_t, say) to fail the write there.
    void set_fault_injector(std::function<void(uint64_t frame)> f) { fault_ = std::move(f); }

protected:
    write_status write_impl(std::span<const batch_ptr> batches) override;

private:
    // Sends one frame, waiting (in short slices, so abort() is seen) while peers are full.
    // False if aborted first.
    bool send_frame(std::string_view frame);

    zmq_sink_config config_;
    zmq::socket_t socket_;
    std::vector<std::string> source_names_;
    std::string json_;
    std::string frame_;  // newline framing: the events gathered for the next frame
    log_limiter wait_log_;
    std::function<void(uint64_t)> fault_;
    uint64_t frames_sent_ = 0;
};

}  // namespace sluice
