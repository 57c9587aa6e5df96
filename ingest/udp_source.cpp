#include "ingest/udp_source.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/units.h"
#include "ingest/framing.h"
#include "ingest/tcp_source.h"

namespace sluice {

namespace {

constexpr unsigned datagrams_per_call = 64;

std::string peer_host(const sockaddr_storage& peer) {
    char text[INET6_ADDRSTRLEN] = {};
    if (peer.ss_family == AF_INET) {
        ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(peer).sin_addr, text,
                    sizeof text);
    } else if (peer.ss_family == AF_INET6) {
        ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(peer).sin6_addr, text,
                    sizeof text);
    }
    return text;
}

}  // namespace

struct udp_source::receiver {
    receiver(lane& on, codec_kind codec) : l(on), socket(on.io), decoder(codec) {}

    lane& l;
    asio::ip::udp::socket socket;
    batch_decoder decoder;
    // recvmmsg buffers, datagrams_per_call slots of `slot` bytes; left uninitialized, so only
    // the pages datagrams land in become resident.
    std::unique_ptr<char[]> scratch;
    size_t slot = 0;
    std::shared_ptr<batch> current;
    sockaddr_storage peer{};  // the current batch's sender
    socklen_t peer_len = 0;
    uint32_t kernel_drops_seen = 0;
    counter datagrams{0};  // any thread
};

udp_source::udp_source(std::string name, source_id id, asio::io_context& io,
                       bounded_queue& queue, udp_source_config config,
                       const std::vector<asio::io_context*>& loops)
    : source(std::move(name), id, io, queue), config_(std::move(config)) {
    for (asio::io_context* loop : loops) {
        if (loop != &io) {
            add_lane(*loop);
        }
    }
    for (const auto& l : lanes()) {
        receivers_.push_back(std::make_unique<receiver>(*l, config_.codec));
    }
}

udp_source::~udp_source() = default;

std::vector<uint64_t> udp_source::datagrams_per_loop() const {
    std::vector<uint64_t> out;
    for (const auto& r : receivers_) {
        out.push_back(r->datagrams.load(std::memory_order_relaxed));
    }
    return out;
}

void udp_source::open_socket(asio::ip::udp::socket& socket,
                             const asio::ip::udp::endpoint& endpoint, bool reuse_port) {
    asio::error_code ec;
    socket.open(endpoint.protocol(), ec);
    const int one = 1;
    if (!ec && reuse_port &&
        ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        ec.assign(errno, asio::system_category());
    }
    if (!ec) {
        socket.bind(endpoint, ec);
    }
    if (ec) {
        throw error("source " + name() + ": cannot listen on udp " + config_.address + ": " +
                    ec.message());
    }
}

void udp_source::tune_socket(asio::ip::udp::socket& socket, bool warn) {
    const int fd = socket.native_handle();
    // SO_RCVBUFFORCE passes net.core.rmem_max when we may (root); else take what SO_RCVBUF gets.
    const int want =
        static_cast<int>(std::min<uint64_t>(config_.receive_buffer_bytes, INT32_MAX / 2));
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof want) != 0) {
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
    }
    const int one = 1;
    if (::setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one) != 0 && warn) {
        spdlog::warn("Source {}: SO_RXQ_OVFL unavailable; kernel drops will not be counted.",
                     name());
    }
    socket.non_blocking(true);
}

void udp_source::start() {
    const auto tcp_endpoint = parse_tcp_endpoint(config_.address);
    asio::ip::udp::endpoint endpoint(tcp_endpoint.address(), tcp_endpoint.port());
    const bool group = receivers_.size() > 1;
    if (group && endpoint.port() != 0) {
        // Sockets of an SO_REUSEPORT group share the port with any other socket that sets it
        // (same user): another sluice on this port would silently take part of the datagrams.
        // A plain bind first proves the port free, so a taken port fails as with one loop.
        asio::ip::udp::socket probe(io_);
        open_socket(probe, endpoint, false);
    }
    const size_t slot = std::min<uint64_t>(config_.max_line_bytes + 1, 65536);
    for (auto& r : receivers_) {
        open_socket(r->socket, endpoint, group);
        tune_socket(r->socket, r.get() == receivers_.front().get());
        endpoint.port(r->socket.local_endpoint().port());  // ":0": the rest join the first's
        r->slot = slot;
        r->scratch.reset(new char[slot * datagrams_per_call]);
    }
    port_ = endpoint.port();
    int got = 0;
    socklen_t len = sizeof got;
    ::getsockopt(receivers_.front()->socket.native_handle(), SOL_SOCKET, SO_RCVBUF, &got, &len);
    const std::string sockets =
        group ? fmt::format("{} sockets, one per io thread, each with a ", receivers_.size()) : "";
    spdlog::info("Source {} listening on udp {}:{} ({}receive buffer {}).", name(),
                 endpoint.address().to_string(), port_, sockets,
                 format_size(static_cast<uint64_t>(got)));
    for (auto& r : receivers_) {
        receiver* const target = r.get();
        supervise("receive loop", [this, target] { return receive_loop(*target); }, {}, &r->l);
    }
}

void udp_source::on_stop() noexcept {
    // Each lane cancels its own socket's wait.
    for (auto& r : receivers_) {
        asio::post(r->l.io, [target = r.get()] {
            asio::error_code ec;
            target->socket.cancel(ec);
        });
    }
}

void udp_source::add_datagram(batch& b, std::string_view data) {
    const bool split = config_.framing == udp_framing::newline;
    if (const uint64_t cut = add_message(b, data, split, config_.max_line_bytes)) {
        bump(counters_.truncated_total, cut);
    }
}

bool udp_source::drain(receiver& r) {
    const size_t slot = r.slot;
    std::array<mmsghdr, datagrams_per_call> messages{};
    std::array<iovec, datagrams_per_call> iov{};
    std::array<sockaddr_storage, datagrams_per_call> peers{};
    alignas(cmsghdr) std::array<std::array<char, CMSG_SPACE(sizeof(uint32_t))>, datagrams_per_call>
        control{};
    bool any = false;
    for (;;) {
        for (unsigned i = 0; i < datagrams_per_call; ++i) {
            iov[i] = {r.scratch.get() + i * slot, slot};
            messages[i].msg_hdr = {};
            messages[i].msg_hdr.msg_iov = &iov[i];
            messages[i].msg_hdr.msg_iovlen = 1;
            messages[i].msg_hdr.msg_name = &peers[i];
            messages[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
            messages[i].msg_hdr.msg_control = control[i].data();
            messages[i].msg_hdr.msg_controllen = control[i].size();
        }
        const int n = ::recvmmsg(r.socket.native_handle(), messages.data(), datagrams_per_call,
                                 MSG_DONTWAIT, nullptr);
        if (n <= 0) {
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                spdlog::warn("Source {}: recvmmsg failed: {}.", name(), std::strerror(errno));
            }
            break;
        }
        any = true;
        uint64_t bytes = 0;
        for (int i = 0; i < n; ++i) {
            const auto& hdr = messages[i].msg_hdr;
            // A batch has one peer (its `host`): a datagram from another sender starts a new one.
            if (r.current && (hdr.msg_namelen != r.peer_len ||
                              std::memcmp(&peers[i], &r.peer, r.peer_len) != 0)) {
                seal_and_push(r);
            }
            if (!r.current) {
                r.current = std::make_shared<batch>(id(), message_batch_bytes + slot);
                r.peer_len = hdr.msg_namelen;
                std::memcpy(&r.peer, &peers[i], r.peer_len);
                r.current->host = peer_host(r.peer);
                r.current->origin = r.current->host;
            }
            const size_t len = messages[i].msg_len;
            bytes += len;
            if ((hdr.msg_flags & MSG_TRUNC) != 0) {
                bump(counters_.truncated_total);
            }
            for (cmsghdr* c = CMSG_FIRSTHDR(&hdr); c != nullptr;
                 c = CMSG_NXTHDR(const_cast<msghdr*>(&hdr), c)) {
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
                    uint32_t drops = 0;
                    std::memcpy(&drops, CMSG_DATA(c), sizeof drops);
                    if (drops != r.kernel_drops_seen) {
                        queue_.count_dropped(id(), drop_reason::kernel, drops - r.kernel_drops_seen);
                        bump(counters_.kernel_drops_total, drops - r.kernel_drops_seen);
                        r.kernel_drops_seen = drops;
                    }
                }
            }
            add_datagram(*r.current, {static_cast<const char*>(iov[i].iov_base),
                                     std::min(len, slot)});
        }
        bump(counters_.bytes_total, bytes);
        bump(r.datagrams, static_cast<uint64_t>(n));
        if (r.current->buffer().size() >= message_batch_bytes) {
            seal_and_push(r);
        }
        if (static_cast<unsigned>(n) < datagrams_per_call) {
            break;
        }
    }
    if (r.current && !r.current->empty()) {
        seal_and_push(r);
    }
    return any;
}

void udp_source::seal_and_push(receiver& r) {
    auto b = std::move(r.current);
    r.current.reset();
    if (b->empty()) {
        return;
    }
    b->received_ns = unix_now_ns();
    bump(counters_.decode_errors_total, r.decoder.decode(*b));
    b->shrink_if_sparse();
    push_or_drop(std::move(b));
}

asio::awaitable<void> udp_source::receive_loop(receiver& r) {
    while (!stopping()) {
        if (drain(r)) {
            continue;
        }
        auto [ec] = co_await r.socket.async_wait(asio::ip::udp::socket::wait_read, use_tuple);
        check_wait(ec, "datagrams");  // cancelled at stop: the loop ends
    }
    drain(r);  // what the kernel already holds was received: keep it
}

}  // namespace sluice
