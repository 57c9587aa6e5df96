#include "ingest/tcp_source.h"

#include <optional>

#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/ssl/context.hpp>
#include <asio/ssl/error.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
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

using steady = std::chrono::steady_clock;
using tls_stream = asio::ssl::stream<asio::ip::tcp::socket>;

// One accepted connection: its socket, inside a TLS stream for a TLS source, and what its read
// loop and its watchdog share (both on its lane's thread).
struct tcp_source::connection {
    connection(asio::ip::tcp::socket socket, asio::ssl::context* tls, source::lane& on)
        : lane(on), watchdog(on.io), opened(steady::now()), last_line(opened) {
        asio::error_code ec;
        const auto peer = socket.remote_endpoint(ec);
        if (!ec) {
            host = peer.address().to_string();
            origin = host + ":" + std::to_string(peer.port());
        }
        if (tls != nullptr) {
            tls_layer.emplace(std::move(socket), *tls);
            handshaking = true;
        } else {
            plain.emplace(std::move(socket));
        }
    }

    // The TCP socket itself (a TLS stream's lowest layer): what stop() and the watchdog cancel.
    asio::ip::tcp::socket& socket() { return tls_layer ? tls_layer->next_layer() : *plain; }

    source::lane& lane;
    std::optional<asio::ip::tcp::socket> plain;
    std::optional<tls_stream> tls_layer;
    std::string host;    // the peer's address, the events' host
    std::string origin;  // ip:port
    asio::steady_timer watchdog;
    time_point opened;
    time_point last_line;           // a line completed, or reading resumed after the queue
    bool handshaking = false;       // TLS: the handshake has not finished
    bool waiting_on_queue = false;  // paused by a full queue: not the client's idleness
    bool cut_off = false;           // the watchdog ended it
    bool ended = false;             // serve() is over
};

tcp_source::tcp_source(std::string name, source_id id, asio::io_context& io,
                       bounded_queue& queue, tcp_source_config config,
                       const std::vector<asio::io_context*>& loops)
    : source(std::move(name), id, io, queue),
      config_(std::move(config)),
      tls_(config_.tls ? make_tls_server_context(*config_.tls, "source " + this->name())
                       : nullptr),
      acceptor_(io) {
    for (asio::io_context* loop : loops) {
        if (loop != &io) {
            add_lane(*loop);
        }
    }
    for (size_t i = 0; i < lanes().size(); ++i) {
        lane_connections_.push_back(std::make_unique<lane_connections>());
    }
}

tcp_source::~tcp_source() = default;

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
    spdlog::info("Source {} listening on tcp {}:{}{}.", name(), endpoint.address().to_string(),
                 port_, tls_ ? " (TLS)" : "");
}

void tcp_source::on_stop() noexcept {
    asio::error_code ec;
    acceptor_.close(ec);
    // Cancelling the reads ends each connection loop, which pushes its partial line. Each lane
    // cancels its own. A connection handed to a lane before this runs there before this does
    // and is cancelled too; one that starts later sees stopping() and never reads.
    for (const auto& l : lanes()) {
        asio::post(l->io, [this, index = l->index] {
            asio::error_code ignored;
            for (const auto& c : lane_connections_[index]->open) {
                c->socket().cancel(ignored);
                c->watchdog.cancel();
            }
        });
    }
}

void tcp_source::refuse(asio::ip::tcp::socket& socket) {
    bump(connection_counters_.rejected_limit);
    uint64_t suppressed = 0;
    if (refuse_log_.should_log(suppressed)) {
        spdlog::warn("Source {}: refused a connection: {} of {} connections open ({} more "
                     "refused in the last 5 s).",
                     name(), open_connections_.load(std::memory_order_relaxed),
                     config_.max_connections, suppressed);
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

// How a connection ends without anything worth logging: the peer closed (a TLS peer may skip
// its close_notify), or stop() or the watchdog cancelled the read.
bool normal_end(const asio::error_code& ec) {
    return ec == asio::error::eof || ec == asio::error::operation_aborted ||
           ec == asio::ssl::error::stream_truncated;
}

// Why a handshake failed, for the log: OpenSSL's reason ("wrong version number", "peer did not
// return a certificate"), with the certificate check's when that failed.
std::string describe_handshake_failure(const asio::error_code& ec, tls_stream& stream) {
    if (normal_end(ec)) {
        return "the client closed the connection";
    }
    std::string why = ec.message();
    const long verified = ::SSL_get_verify_result(stream.native_handle());
    if (verified != X509_V_OK) {
        why += ": ";
        why += ::X509_verify_cert_error_string(verified);
    }
    return why;
}

}  // namespace

asio::awaitable<void> tcp_source::accept_loop() {
    if (!acceptor_.is_open()) {
        listen();  // a restart after a failure
    }
    asio::steady_timer backoff(io_);
    while (!stopping()) {
        // The new socket belongs to the lane it will be read on.
        lane& to = pick_lane();
        const asio::any_io_executor on = to.io.get_executor();
        auto [ec, socket] = co_await acceptor_.async_accept(on, use_tuple);
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
        if (open_connections_.load(std::memory_order_relaxed) >= config_.max_connections) {
            refuse(socket);
            continue;
        }
        open_connection(std::move(socket), to);
    }
}

std::vector<size_t> tcp_source::connections_per_lane() const {
    std::vector<size_t> counts;
    for (const auto& l : lane_connections_) {
        counts.push_back(l->count.load(std::memory_order_relaxed));
    }
    return counts;
}

source::lane& tcp_source::pick_lane() {
    lane* best = lanes().front().get();
    size_t fewest = SIZE_MAX;
    for (const auto& l : lanes()) {
        const size_t n = lane_connections_[l->index]->count.load(std::memory_order_relaxed);
        if (n < fewest) {
            fewest = n;
            best = l.get();
        }
    }
    return *best;
}

void tcp_source::open_connection(asio::ip::tcp::socket socket, lane& l) {
    // Counted here, on the acceptor's thread, so the next pick_lane and max_connections see it.
    lane_connections_[l.index]->count.fetch_add(1, std::memory_order_relaxed);
    const size_t open = open_connections_.fetch_add(1, std::memory_order_relaxed) + 1;
    connection_counters_.open.store(open, std::memory_order_relaxed);
    auto c = std::make_shared<connection>(std::move(socket), tls_.get(), l);
    spawn_task("connection", run_connection(c), [this, c] {
        // On the lane's thread, however the connection ended (a throw included).
        c->ended = true;
        c->watchdog.cancel();  // its watchdog ends too
        asio::error_code ignored;
        c->socket().close(ignored);
        auto& mine = *lane_connections_[c->lane.index];
        mine.open.erase(c);
        mine.count.fetch_sub(1, std::memory_order_relaxed);
        const size_t left = open_connections_.fetch_sub(1, std::memory_order_relaxed) - 1;
        connection_counters_.open.store(left, std::memory_order_relaxed);
    }, &l);
}

asio::awaitable<void> tcp_source::run_connection(std::shared_ptr<connection> c) {
    lane_connections_[c->lane.index]->open.insert(c);
    if (stopping()) {
        co_return;  // stop() ran before this lane got the connection
    }
    // A plain connection without idle_timeout has nothing to watch: no timer at all.
    if (tls_ || config_.idle_timeout > std::chrono::nanoseconds::zero()) {
        spawn_task("connection watchdog", watch(c), {}, &c->lane);
    }
    co_await serve(c);
}

asio::awaitable<void> tcp_source::serve(std::shared_ptr<connection> c) {
    if (!c->tls_layer) {
        co_await read_loop(*c->plain, *c);
        co_return;
    }
    // Not `if (co_await ...)`: GCC 12 miscompiled that form here (the coroutine hit ud2).
    const bool accepted = co_await handshake(*c);
    if (accepted) {
        co_await read_loop(*c->tls_layer, *c);
    }
}

asio::awaitable<bool> tcp_source::handshake(connection& c) {
    auto [ec] = co_await c.tls_layer->async_handshake(asio::ssl::stream_base::server, use_tuple);
    c.handshaking = false;
    c.last_line = steady::now();  // the idle clock starts once the client can send lines
    c.watchdog.cancel();          // from the handshake's deadline to the idle one, or none
    if (!ec && !c.cut_off) {
        co_return true;
    }
    if (stopping()) {
        co_return false;
    }
    bump(connection_counters_.rejected_tls);
    uint64_t suppressed = 0;
    if (tls_log_.should_log(suppressed)) {
        const double limit = std::chrono::duration<double>(config_.handshake_timeout).count();
        const std::string why = c.cut_off
                                    ? fmt::format("it did not finish within {:.1f} s", limit)
                                    : describe_handshake_failure(ec, *c.tls_layer);
        spdlog::warn("Source {}: cut off {}: TLS handshake failed: {} ({} more in the last 5 s).",
                     name(), c.origin, why, suppressed);
    }
    co_return false;
}

template <typename Stream>
asio::awaitable<void> tcp_source::read_loop(Stream& stream, connection& c) {
    const size_t read_bytes = config_.read_bytes;
    framer frame(config_.framing_kind, config_.max_line_bytes);
    batch_decoder decoder(config_.codec);
    auto current = std::make_shared<batch>(id());
    bool drained = true;  // the last read left the socket empty (or there was none yet)
    // Waiting for the queue is sluice's doing: the idle clock starts over after it.
    auto waited_for_queue = [&c] {
        c.waiting_on_queue = false;
        c.last_line = steady::now();
    };
    auto seal_and_push = [&](bool last) -> asio::awaitable<bool> {
        // The next buffer is sized when there is something to read into it (below).
        const size_t pending = frame.pending_bytes(*current);
        auto next = std::make_shared<batch>(id(), last || pending == 0 ? 0 : read_bytes + pending);
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
            current->origin = c.origin;
            current->host = c.host;
            bump(counters_.decode_errors_total, decoder.decode(*current));
            current->shrink_if_sparse();
            c.waiting_on_queue = true;
            ok = co_await push(std::move(current), c.lane);
            waited_for_queue();
        }
        current = std::move(next);
        co_return ok;
    };
    for (;;) {
        if (paused(c.lane)) {
            c.waiting_on_queue = true;
            co_await wait_while_paused(c.lane);
            waited_for_queue();
        }
        if (stopping() || c.cut_off) {
            break;
        }
        auto& buffer = current->buffer();
        if (buffer.size() == 0 && drained && !c.tls_layer) {
            // The last read emptied the socket: wait until it is readable before taking a
            // read buffer, so an idle connection holds none (1,000 idle clients would hold
            // 64 MiB outside the queue's count). A busy one skips the wait. A TLS stream may
            // hold decrypted bytes the socket no longer shows, so it reads at once.
            auto [waited] = co_await c.socket().async_wait(asio::socket_base::wait_read,
                                                           use_tuple);
            if (waited) {
                if (!normal_end(waited)) {
                    spdlog::debug("Source {}: connection {} ended: {}.", name(), c.origin,
                                  waited.message());
                }
                break;
            }
            if (paused(c.lane) || stopping() || c.cut_off) {
                continue;
            }
        }
        if (buffer.free_space() < read_bytes) {
            buffer.reserve(buffer.size() + read_bytes);
        }
        auto [ec, n] = co_await stream.async_read_some(
            asio::buffer(buffer.tail(), buffer.free_space()), use_tuple);
        if (ec) {
            if (!normal_end(ec)) {
                spdlog::debug("Source {}: connection {} ended: {}.", name(), c.origin,
                              ec.message());
            }
            break;
        }
        drained = n < buffer.free_space();
        buffer.commit(n);
        bump(counters_.bytes_total, n);
        frame.consume(*current);
        if (!current->empty()) {
            c.last_line = steady::now();
            if (!co_await seal_and_push(false)) {
                break;
            }
        }
    }
    if (c.cut_off) {
        note_idle_close(c);
    }
    // Its partial line is pushed, as when the client closes or sluice stops.
    co_await seal_and_push(true);
}

void tcp_source::note_idle_close(const connection& c) {
    bump(connection_counters_.idle_closed);
    uint64_t suppressed = 0;
    if (idle_log_.should_log(suppressed)) {
        spdlog::info("Source {}: closed the connection from {}: no complete line in {:.1f} s "
                     "(idle_timeout; {} more closed in the last 5 s).",
                     name(), c.origin,
                     std::chrono::duration<double>(config_.idle_timeout).count(), suppressed);
    }
}

std::optional<tcp_source::time_point> tcp_source::deadline(const connection& c) const {
    if (c.ended || stopping()) {
        return std::nullopt;
    }
    if (c.handshaking) {
        return c.opened + config_.handshake_timeout;
    }
    if (config_.idle_timeout <= std::chrono::nanoseconds::zero()) {
        return std::nullopt;
    }
    if (c.waiting_on_queue) {
        return steady::now() + config_.idle_timeout;  // looked at again then
    }
    return c.last_line + config_.idle_timeout;
}

asio::awaitable<void> tcp_source::watch(std::shared_ptr<connection> c) {
    for (;;) {
        const auto when = deadline(*c);
        if (!when) {
            co_return;
        }
        if (steady::now() >= *when) {
            // The read (or handshake) in progress ends with operation_aborted; the loop sees
            // cut_off and closes.
            c->cut_off = true;
            asio::error_code ignored;
            c->socket().cancel(ignored);
            co_return;
        }
        // Not reset on every line: a wake finds the deadline moved and waits again.
        c->watchdog.expires_at(*when);
        auto [ec] = co_await c->watchdog.async_wait(use_tuple);
        check_wait(ec, "a connection's deadline");
    }
}

}  // namespace sluice
