#include "ingest/zmq_source.h"

#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "common/error.h"
#include "ingest/framing.h"

namespace sluice {

namespace {

constexpr size_t batch_max_events = 4096;

}  // namespace

zmq_source::zmq_source(std::string name, source_id id, asio::io_context& io,
                       bounded_queue& queue, zmq::context_t& context, zmq_source_config config)
    : source(std::move(name), id, io, queue),
      config_(std::move(config)),
      context_(context),
      fd_(io),
      decoder_(config_.codec) {}

zmq_source::~zmq_source() {
    // The descriptor belongs to ZeroMQ: never let Asio close it.
    if (fd_.is_open()) {
        fd_.release();
    }
}

void zmq_source::start() {
    open_socket();
    supervise("receive loop", [this] { return receive_loop(); });
}

void zmq_source::open_socket() {
    if (fd_.is_open()) {
        fd_.release();  // the descriptor belongs to the old socket
    }
    try {
        socket_ = zmq::socket_t(context_, config_.socket == zmq_source_socket::pull
                                              ? zmq::socket_type::pull
                                              : zmq::socket_type::sub);
        socket_.set(zmq::sockopt::rcvhwm, config_.rcvhwm);
        socket_.set(zmq::sockopt::linger, 0);
        if (config_.socket == zmq_source_socket::sub) {
            for (const auto& prefix : config_.subscribe) {
                socket_.set(zmq::sockopt::subscribe, prefix);
            }
        }
        if (config_.bind) {
            socket_.bind(config_.endpoint);
        } else {
            socket_.connect(config_.endpoint);
        }
        fd_.assign(socket_.get(zmq::sockopt::fd));
    } catch (const zmq::error_t& e) {
        throw error("source " + name() + ": cannot " + (config_.bind ? "bind " : "connect ") +
                    config_.endpoint + ": " + e.what());
    }
    spdlog::info("Source {} {} zmq {} ({}).", name(), config_.bind ? "bound to" : "connected to",
                 config_.endpoint, config_.socket == zmq_source_socket::pull ? "pull" : "sub");
    in_multipart_ = false;
    holding_ = false;
    socket_failed_ = false;
}

void zmq_source::on_stop() noexcept {
    asio::error_code ec;
    fd_.cancel(ec);
}

bool zmq_source::readable() {
    return (socket_.get(zmq::sockopt::events) & ZMQ_POLLIN) != 0;
}

std::shared_ptr<batch> zmq_source::receive_ready() {
    auto b = std::make_shared<batch>(id(), message_batch_bytes);
    // Size the records for what the last batch held, to avoid regrowing them per event.
    b->events().reserve(events_hint_);
    const bool sub = config_.socket == zmq_source_socket::sub;
    const bool split = config_.framing == message_framing::newline;
    uint64_t truncated = 0;
    uint64_t bytes = 0;
    while (b->event_count() < batch_max_events) {
        if (!holding_) {
            if (!socket_.recv(held_, zmq::recv_flags::dontwait)) {
                break;
            }
            holding_ = true;
            bytes += held_.size();
        }
        const bool more = held_.more();
        if (sub && !in_multipart_ && more) {
            // The first frame of a multipart SUB message is its topic.
            topic_.assign(static_cast<const char*>(held_.data()), held_.size());
            in_multipart_ = true;
            holding_ = false;
            continue;
        }
        // A frame that would not fit waits for the next batch: growing the buffer past its
        // 64 KiB would copy everything it holds and leave the batch half empty in the queue.
        if (!b->empty() && held_.size() + 1 > b->buffer().free_space()) {
            break;
        }
        holding_ = false;
        const size_t first = b->event_count();
        truncated += add_message(*b, {static_cast<const char*>(held_.data()), held_.size()},
                                 split, config_.max_line_bytes);
        if (sub && in_multipart_ && b->event_count() > first) {
            b->meta().resize(b->event_count());
            const text_ref topic{static_cast<uint32_t>(b->extra().size()),
                                 static_cast<uint32_t>(topic_.size()), true};
            b->extra() += topic_;
            for (size_t i = first; i < b->event_count(); ++i) {
                b->meta()[i].topic = topic;
            }
        }
        if (!more) {
            in_multipart_ = false;
        }
    }
    bump(counters_.bytes_total, bytes);
    bump(counters_.truncated_total, truncated);
    if (!b->meta().empty()) {
        b->meta().resize(b->event_count());
    }
    if (!b->empty()) {
        events_hint_ = b->event_count() + b->event_count() / 4 + 16;
    }
    return b;
}

asio::awaitable<void> zmq_source::receive_loop() {
    if (socket_failed_) {
        open_socket();  // a restart after a ZeroMQ error: that socket is not to be trusted
    }
    try {
        co_await receive_messages();
    } catch (const zmq::error_t&) {
        socket_failed_ = true;
        throw;
    }
}

asio::awaitable<void> zmq_source::receive_messages() {
    for (;;) {
        co_await wait_while_paused();
        auto b = receive_ready();
        if (!b->empty()) {
            b->received_ns = unix_now_ns();
            b->origin = config_.endpoint;
            bump(counters_.decode_errors_total, decoder_.decode(*b));
            b->shrink_if_sparse();
            if (!co_await push(std::move(b))) {
                break;
            }
            // A push that finds room does not suspend: let the loop's other work (the other
            // sources, resume, stop) in between batches, as a socket read does.
            co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
            continue;
        }
        if (stopping()) {
            break;  // drained what ZeroMQ held: nothing read is left behind
        }
        // ZMQ_FD is edge-triggered: reading ZMQ_EVENTS re-arms it, and a message may have
        // arrived since the last recv, so look once more before waiting.
        if (readable()) {
            continue;
        }
        auto [ec] = co_await fd_.async_wait(asio::posix::stream_descriptor::wait_read, use_tuple);
        check_wait(ec, "messages");  // cancelled at stop: the next pass drains and ends
    }
}

}  // namespace sluice
