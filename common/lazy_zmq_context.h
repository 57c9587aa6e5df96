// lazy_zmq_context: the process's one ZeroMQ context, made when the first ZeroMQ source or sink
// asks for it, so a config without ZeroMQ has no context (and never starts its threads).
// Construction-time only (the pipeline's constructor, one thread); outlives every socket.
#pragma once

#include <optional>

#include <zmq.hpp>

namespace sluice {

class lazy_zmq_context {
public:
    zmq::context_t& get() {
        if (!context_) {
            context_.emplace(1);  // one I/O thread: a log shipper's sockets are few
        }
        return *context_;
    }
    bool made() const { return context_.has_value(); }

private:
    std::optional<zmq::context_t> context_;
};

}  // namespace sluice
