#include "sinks/zmq_sink.h"

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "sinks/event_json.h"

namespace sluice {

namespace {

constexpr int send_slice_ms = 100;
// Newline framing: a frame is sent once it holds this much (and at the end of a write).
constexpr size_t frame_target_bytes = 64 * 1024;

}  // namespace

zmq_sink::zmq_sink(std::string name, batch_config batch, zmq_sink_config config,
                   zmq::context_t& context, std::vector<std::string> source_names)
    : sink(std::move(name), batch),
      config_(std::move(config)),
      socket_(context, config_.socket == zmq_sink_socket::push ? zmq::socket_type::push
                                                               : zmq::socket_type::pub),
      source_names_(std::move(source_names)),
      wait_log_(10'000'000'000) {
    try {
        socket_.set(zmq::sockopt::sndhwm, config_.sndhwm);
        socket_.set(zmq::sockopt::sndtimeo, send_slice_ms);
        socket_.set(zmq::sockopt::linger, 1000);
        for (const auto& endpoint : config_.endpoints) {
            socket_.connect(endpoint);
        }
    } catch (const zmq::error_t& e) {
        throw error("sink " + this->name() + ": " + e.what());
    }
    spdlog::info("Sink {} {} to {} endpoint(s).", this->name(),
                 config_.socket == zmq_sink_socket::push ? "pushing" : "publishing",
                 config_.endpoints.size());
}

bool zmq_sink::send_frame(std::string_view frame) {
    if (fault_) {
        fault_(frames_sent_);
    }
    for (;;) {
        // A blocking send with a short timeout: on a PUSH socket it waits while every peer
        // is at its high-water mark (or none is connected); PUB never waits, it drops.
        const auto sent = socket_.send(zmq::const_buffer(frame.data(), frame.size()),
                                       zmq::send_flags::none);
        if (sent) {
            ++frames_sent_;
            return true;
        }
        if (aborted()) {
            return false;
        }
        uint64_t suppressed = 0;
        if (wait_log_.should_log(suppressed)) {
            spdlog::warn("Sink {}: peers are not taking messages; waiting (backpressure).",
                         name());
        }
    }
}

write_status zmq_sink::write_impl(std::span<const batch_ptr> batches) {
    // Frames go out one by one and cannot be taken back. Each attempt starts where the last
    // one stopped (progress(): the first event not in a sent frame) and moves it past every
    // frame ZeroMQ took; an exception (zmq::error_t) leaves it there for the retry.
    resume_point& at = progress();
    const bool packed = config_.framing == message_framing::newline;
    frame_.clear();
    for (size_t bi = at.batch; bi < batches.size(); ++bi) {
        const batch& b = *batches[bi];
        const std::string& source = source_label(b, source_names_);
        for (size_t i = bi == at.batch ? at.event : 0; i < b.event_count(); ++i) {
            std::string_view event = b.line(i);
            if (config_.format == zmq_sink_format::json) {
                json_.clear();
                append_event_json(json_, b, i, source);
                event = json_;
            }
            if (packed) {
                frame_.append(event);
                frame_.push_back('\n');
                if (frame_.size() < frame_target_bytes) {
                    continue;
                }
                event = frame_;
            }
            if (!send_frame(event)) {
                return write_status::retry;  // aborted: the sink is ending
            }
            frame_.clear();
            at.batch = bi;
            at.event = i + 1;
        }
    }
    if (!frame_.empty() && !send_frame(frame_)) {
        return write_status::retry;
    }
    return write_status::ok;
}

}  // namespace sluice
