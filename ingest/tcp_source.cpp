#include "ingest/tcp_source.h"

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "common/error.h"

namespace sluice {

asio::ip::tcp::endpoint parse_tcp_endpoint(const std::string& address) {
    const auto colon = address.rfind(':');
    if (colon == std::string::npos) {
        throw error("address '" + address + "' has no port (expected host:port)");
    }
    std::string host = address.substr(0, colon);
    const std::string port_text = address.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    unsigned long port = 0;
    try {
        size_t used = 0;
        port = std::stoul(port_text, &used);
        if (used != port_text.size() || port > 65535) {
            throw std::invalid_argument("port");
        }
    } catch (const std::exception&) {
        throw error("address '" + address + "' has an invalid port");
    }
    if (host.empty() || host == "*") {
        host = "0.0.0.0";
    } else if (host == "localhost") {
        host = "127.0.0.1";
    }
    asio::error_code ec;
    auto ip = asio::ip::make_address(host, ec);
    if (ec) {
        throw error("address '" + address + "': '" + host + "' is not an IP address");
    }
    return {ip, static_cast<uint16_t>(port)};
}

tcp_source::tcp_source(std::string name, source_id id, asio::io_context& io,
                       bounded_queue& queue, tcp_source_config config)
    : source(std::move(name), id, io, queue), config_(std::move(config)), acceptor_(io) {}

void tcp_source::start() {
    listen();
    supervise("accept loop", [this] { return accept_loop(); });
}

void tcp_source::listen() {
    auto endpoint = parse_tcp_endpoint(config_.address);
    if (port_ != 0) {
        endpoint.port(port_);  // a re-bind keeps the port an address ":0" was given
    }
    asio::error_code ec;
    acceptor_.close(ec);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) {
        acceptor_.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
    }
    if (!ec) {
        acceptor_.bind(endpoint, ec);
    }
    if (!ec) {
        acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    }
    if (ec) {
        asio::error_code ignored;
        acceptor_.close(ignored);
        throw error("source " + name() + ": cannot listen on " + config_.address + ": " +
                    ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
    spdlog::info("Source {} listening on tcp {}:{}.", name(), endpoint.address().to_string(),
                 port_);
}

void tcp_source::on_stop() noexcept {
    asio::error_code ec;
    acceptor_.close(ec);
    // Cancelling the reads ends each connection loop, which pushes its partial line.
    for (const auto& socket : connections_) {
        socket->cancel(ec);
    }
}

void tcp_source::refuse(asio::ip::tcp::socket& socket) {
    bump(connection_counters_.rejected_limit);
    uint64_t suppressed = 0;
    if (refuse_log_.should_log(suppressed)) {
        spdlog::warn("Source {}: refused a connection: {} of {} connections open ({} more "
                     "refused in the last 5 s).",
                     name(), connections_.size(), config_.max_connections, suppressed);
    }
    asio::error_code ignored;
    socket.close(ignored);
}

namespace {

// Accept errors that pass: out of descriptors or memory, or a peer gone before accept.
bool transient_accept_error(const asio::error_code& ec) {
    return ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space ||
           ec == asio::error::no_memory || ec == asio::error::connection_aborted ||
           ec == asio::error::interrupted || ec.value() == ENFILE;
}

}  // namespace

asio::awaitable<void> tcp_source::accept_loop() {
    if (!acceptor_.is_open()) {
        listen();  // a restart after a failure
    }
    asio::steady_timer backoff(io_);
    while (!stopping()) {
        auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
        if (stopping()) {
            break;
        }
        if (ec) {
            if (!transient_accept_error(ec)) {
                throw asio::system_error(ec, "accept");  // re-bound by the supervisor
            }
            // EMFILE and friends: back off rather than spin on a failing accept.
            uint64_t suppressed = 0;
            if (accept_log_.should_log(suppressed)) {
                spdlog::warn("Source {}: accept failed: {}; retrying in 100 ms ({} more in the "
                             "last 5 s).",
                             name(), ec.message(), suppressed);
            }
            backoff.expires_after(std::chrono::milliseconds(100));
            auto [waited] = co_await backoff.async_wait(use_tuple);
            check_wait(waited, "accept backoff");
            continue;
        }
        if (connections_.size() >= config_.max_connections) {
            refuse(socket);
            continue;
        }
        auto shared = std::make_shared<asio::ip::tcp::socket>(std::move(socket));
        connections_.insert(shared);
        connection_counters_.open.store(connections_.size(), std::memory_order_relaxed);
        spawn_task("connection", serve(shared), [this, shared] {
            asio::error_code ignored;
            shared->close(ignored);
            connections_.erase(shared);
            connection_counters_.open.store(connections_.size(), std::memory_order_relaxed);
        });
    }
}

asio::awaitable<void> tcp_source::serve(std::shared_ptr<asio::ip::tcp::socket> socket) {
    std::string origin;
    std::string host;
    {
        asio::error_code ec;
        const auto peer = socket->remote_endpoint(ec);
        if (!ec) {
            host = peer.address().to_string();
            origin = host + ":" + std::to_string(peer.port());
        }
    }
    const size_t read_bytes = config_.read_bytes;
    framer frame(config_.framing_kind, config_.max_line_bytes);
    batch_decoder decoder(config_.codec);
    auto current = std::make_shared<batch>(id(), read_bytes);
    auto seal_and_push = [&](bool last) -> asio::awaitable<bool> {
        auto next =
            std::make_shared<batch>(id(), last ? 0 : read_bytes + frame.pending_bytes(*current));
        if (!last) {
            // Size the records for what the last read held, to avoid regrowing them per line.
            next->events().reserve(current->event_count() + current->event_count() / 4 + 16);
        }
        if (last) {
            frame.finish(*current);
        } else {
            frame.carry_over(*current, *next);
        }
        bump(counters_.truncated_total, frame.take_truncated());
        bool ok = true;
        if (!current->empty()) {
            current->received_ns = unix_now_ns();
            current->origin = origin;
            current->host = host;
            bump(counters_.decode_errors_total, decoder.decode(*current));
            current->shrink_if_sparse();
            ok = co_await push(std::move(current));
        }
        current = std::move(next);
        co_return ok;
    };
    for (;;) {
        co_await wait_while_paused();
        if (stopping()) {
            break;
        }
        auto& buffer = current->buffer();
        if (buffer.free_space() < read_bytes) {
            buffer.reserve(buffer.size() + read_bytes);
        }
        auto [ec, n] = co_await socket->async_read_some(
            asio::buffer(buffer.tail(), buffer.free_space()), use_tuple);
        if (ec) {
            if (ec != asio::error::eof && ec != asio::error::operation_aborted) {
                spdlog::debug("Source {}: connection {} ended: {}.", name(), origin, ec.message());
            }
            break;
        }
        buffer.commit(n);
        bump(counters_.bytes_total, n);
        frame.consume(*current);
        if (!current->empty() && !co_await seal_and_push(false)) {
            break;
        }
    }
    co_await seal_and_push(true);
}

}  // namespace sluice
