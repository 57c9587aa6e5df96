#include "ingest/generator_source.h"

#include <array>

#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "common/json_writer.h"

namespace sluice {

namespace {

constexpr uint64_t max_batch_events = 1024;
constexpr auto tick = std::chrono::milliseconds(10);

// Messages in the style of real daemons' logs, so codecs and sinks see realistic lines.
constexpr std::array<std::string_view, 8> messages{
    "Accepted publickey for deploy from 10.0.4.17 port 52144 ssh2",
    "Connection closed by authenticating user root 203.0.113.9 port 40022 [preauth]",
    "GET /api/v1/orders?page=3 HTTP/1.1 200 1532 \"-\" \"curl/7.88.1\" 0.012",
    "worker 7 finished job 5521 in 183 ms (queue depth 42)",
    "disk /dev/nvme0n1p2 at 81% (412.3 GiB of 512.0 GiB); threshold 80%",
    "Started Daily apt upgrade and clean activities.",
    "upstream timed out (110: Connection timed out) while reading response header",
    "checkpoint complete: wrote 1874 buffers (11.4%); 0 WAL file(s) added",
};

}  // namespace

std::optional<generator_format> parse_generator_format(std::string_view s) {
    if (s == "syslog") {
        return generator_format::syslog;
    }
    if (s == "json") {
        return generator_format::json;
    }
    if (s == "text") {
        return generator_format::text;
    }
    return std::nullopt;
}

generator_source::generator_source(std::string name, source_id id, asio::io_context& io,
                                   bounded_queue& queue, generator_source_config config)
    : source(std::move(name), id, io, queue),
      config_(config),
      decoder_(config.codec),
      tick_(io) {}

void generator_source::start() {
    spdlog::info("Source {} generating {} events/s ({} in all).", name(),
                 config_.rate == 0 ? std::string("unlimited") : std::to_string(config_.rate),
                 config_.count == 0 ? std::string("unlimited") : std::to_string(config_.count));
    supervise("generator loop", [this] { return generate_loop(); });
}

void generator_source::on_stop() noexcept {
    tick_.cancel();
}

void generator_source::make_line(batch& b, uint64_t seq, int64_t now_ns) {
    const std::string_view message = messages[seq % messages.size()];
    line_.clear();
    auto out = std::back_inserter(line_);
    switch (config_.format) {
        case generator_format::syslog: {
            line_ += fmt::format("<{}>1 ", 8 + seq % 8);  // facility user, every severity
            append_rfc3339_ns(line_, now_ns);
            fmt::format_to(out, " sluice-gen {} {} ID{} [gen@32473 seq=\"{}\"] {}", name(),
                           seq % 90000 + 1000, seq % 100, seq, message);
            break;
        }
        case generator_format::json:
            fmt::format_to(out, "{{\"ts\":{},\"level\":\"{}\",\"seq\":{},\"message\":", now_ns,
                           seq % 5 == 0 ? "warn" : "info", seq);
            append_json_string(line_, message);
            line_ += '}';
            break;
        case generator_format::text:
            fmt::format_to(out, "{} seq={}", message, seq);
            break;
    }
    b.add_line(line_);
}

asio::awaitable<void> generator_source::generate_loop() {
    const int64_t start_ns = mono_now_ns();
    while (!stopping() && (config_.count == 0 || generated_ < config_.count)) {
        uint64_t due = max_batch_events;
        if (config_.rate != 0) {
            const auto elapsed = static_cast<double>(mono_now_ns() - start_ns) / 1e9;
            const auto target = static_cast<uint64_t>(elapsed * static_cast<double>(config_.rate));
            due = target > generated_ ? std::min(target - generated_, max_batch_events) : 0;
        }
        if (config_.count != 0) {
            due = std::min(due, config_.count - generated_);
        }
        if (due == 0) {
            tick_.expires_after(tick);
            auto [ec] = co_await tick_.async_wait(use_tuple);
            check_wait(ec, "the next tick");
            continue;
        }
        auto b = std::make_shared<batch>(id(), due * 160);
        b->events().reserve(due);
        const int64_t now = unix_now_ns();
        for (uint64_t i = 0; i < due; ++i) {
            make_line(*b, generated_ + i, now);
        }
        generated_ += due;
        b->received_ns = now;
        b->origin = "generator";
        bump(counters_.bytes_total, b->buffer().size());
        bump(counters_.decode_errors_total, decoder_.decode(*b));
        if (!co_await push(std::move(b))) {
            break;
        }
        if (config_.rate == 0) {
            // Let sockets and signals run between batches.
            co_await asio::post(io_, asio::use_awaitable);
        }
    }
    if (config_.count != 0 && generated_ >= config_.count) {
        spdlog::info("Source {} generated all {} events.", name(), generated_);
    }
}

}  // namespace sluice
