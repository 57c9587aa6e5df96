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

}  // namespace

udp_source::udp_source(std::string name, source_id id, asio::io_context& io,
                       bounded_queue& queue, udp_source_config config)
    : source(std::move(name), id, io, queue),
      config_(std::move(config)),
      socket_(io),
      decoder_(config_.codec) {}

void udp_source::start() {
    const auto tcp_endpoint = parse_tcp_endpoint(config_.address);
    const asio::ip::udp::endpoint endpoint(tcp_endpoint.address(), tcp_endpoint.port());
    asio::error_code ec;
    socket_.open(endpoint.protocol(), ec);
    if (!ec) {
        socket_.bind(endpoint, ec);
    }
    if (ec) {
        throw error("source " + name() + ": cannot listen on udp " + config_.address + ": " +
                    ec.message());
    }
    const int fd = socket_.native_handle();
    // SO_RCVBUFFORCE passes net.core.rmem_max when we may (root); else take what SO_RCVBUF gets.
    const int want =
        static_cast<int>(std::min<uint64_t>(config_.receive_buffer_bytes, INT32_MAX / 2));
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof want) != 0) {
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
    }
    int got = 0;
    socklen_t len = sizeof got;
    ::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &len);
    const int one = 1;
    if (::setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one) != 0) {
        spdlog::warn("Source {}: SO_RXQ_OVFL unavailable; kernel drops will not be counted.",
                     name());
    }
    socket_.non_blocking(true);
    port_ = socket_.local_endpoint().port();
    const size_t slot = std::min<uint64_t>(config_.max_line_bytes + 1, 65536);
    scratch_.resize(slot * datagrams_per_call);
    spdlog::info("Source {} listening on udp {}:{} (receive buffer {}).", name(),
                 endpoint.address().to_string(), port_, format_size(static_cast<uint64_t>(got)));
    supervise("receive loop", [this] { return receive_loop(); });
}

void udp_source::on_stop() noexcept {
    asio::error_code ec;
    socket_.cancel(ec);
}

void udp_source::add_datagram(batch& b, std::string_view data) {
    const bool split = config_.framing == udp_framing::newline;
    if (const uint64_t cut = add_message(b, data, split, config_.max_line_bytes)) {
        bump(counters_.truncated_total, cut);
    }
}

bool udp_source::drain() {
    const size_t slot = scratch_.size() / datagrams_per_call;
    std::array<mmsghdr, datagrams_per_call> messages{};
    std::array<iovec, datagrams_per_call> iov{};
    std::array<sockaddr_storage, datagrams_per_call> peers{};
    alignas(cmsghdr) std::array<std::array<char, CMSG_SPACE(sizeof(uint32_t))>, datagrams_per_call>
        control{};
    bool any = false;
    for (;;) {
        for (unsigned i = 0; i < datagrams_per_call; ++i) {
            iov[i] = {scratch_.data() + i * slot, slot};
            messages[i].msg_hdr = {};
            messages[i].msg_hdr.msg_iov = &iov[i];
            messages[i].msg_hdr.msg_iovlen = 1;
            messages[i].msg_hdr.msg_name = &peers[i];
            messages[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
            messages[i].msg_hdr.msg_control = control[i].data();
            messages[i].msg_hdr.msg_controllen = control[i].size();
        }
        const int n = ::recvmmsg(socket_.native_handle(), messages.data(), datagrams_per_call,
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
            if (current_ && (hdr.msg_namelen != peer_len_ ||
                             std::memcmp(&peers[i], &peer_, peer_len_) != 0)) {
                seal_and_push();
            }
            if (!current_) {
                current_ = std::make_shared<batch>(id(), message_batch_bytes + slot);
                peer_len_ = hdr.msg_namelen;
                std::memcpy(&peer_, &peers[i], peer_len_);
                current_->host = peer_host();
                current_->origin = current_->host;
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
                    if (drops != kernel_drops_seen_) {
                        queue_.count_dropped(id(), drop_reason::kernel, drops - kernel_drops_seen_);
                        bump(counters_.kernel_drops_total, drops - kernel_drops_seen_);
                        kernel_drops_seen_ = drops;
                    }
                }
            }
            add_datagram(*current_, {static_cast<const char*>(iov[i].iov_base),
                                     std::min(len, slot)});
        }
        bump(counters_.bytes_total, bytes);
        if (current_->buffer().size() >= message_batch_bytes) {
            seal_and_push();
        }
        if (static_cast<unsigned>(n) < datagrams_per_call) {
            break;
        }
    }
    if (current_ && !current_->empty()) {
        seal_and_push();
    }
    return any;
}

std::string udp_source::peer_host() const {
    char text[INET6_ADDRSTRLEN] = {};
    if (peer_.ss_family == AF_INET) {
        ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(peer_).sin_addr, text,
                    sizeof text);
    } else if (peer_.ss_family == AF_INET6) {
        ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(peer_).sin6_addr, text,
                    sizeof text);
    }
    return text;
}

void udp_source::seal_and_push() {
    auto b = std::move(current_);
    current_.reset();
    if (b->empty()) {
        return;
    }
    b->received_ns = unix_now_ns();
    bump(counters_.decode_errors_total, decoder_.decode(*b));
    b->shrink_if_sparse();
    push_or_drop(std::move(b));
}

asio::awaitable<void> udp_source::receive_loop() {
    while (!stopping()) {
        if (drain()) {
            continue;
        }
        auto [ec] = co_await socket_.async_wait(asio::ip::udp::socket::wait_read, use_tuple);
        check_wait(ec, "datagrams");  // cancelled at stop: the loop ends
    }
    drain();  // what the kernel already holds was received: keep it
}

}  // namespace sluice
