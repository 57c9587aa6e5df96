// generator_source: makes events itself, for demos and benchmarks: `rate` per second (0: as
// fast as the queue takes them), `count` in all (0: forever), as syslog, JSON or text lines.
// Pausing is lossless: it simply makes nothing until resumed. io thread only.
#pragma once

#include <cstdint>
#include <string>

#include "ingest/codecs/batch_decoder.h"
#include "ingest/source.h"

namespace sluice {

enum class generator_format { syslog, json, text };

struct generator_source_config {
    uint64_t rate = 1000;                          // events per second, 0 = as fast as possible
    uint64_t count = 0;                            // events in all, 0 = forever
    generator_format format = generator_format::syslog;
    codec_kind codec = codec_kind::text;           // decode what it makes, like any source
};

class generator_source final : public source {
public:
    generator_source(std::string name, source_id id, asio::io_context& io, bounded_queue& queue,
                     generator_source_config config);

    void start() override;
    uint64_t generated() const { return generated_; }

private:
    void on_stop() noexcept override;
    asio::awaitable<void> generate_loop();
    // Appends event number `seq` in the configured format.
    void make_line(batch& b, uint64_t seq, int64_t now_ns);

    generator_source_config config_;
    batch_decoder decoder_;
    asio::steady_timer tick_;
    std::string line_;
    uint64_t generated_ = 0;
};

std::optional<generator_format> parse_generator_format(std::string_view s);

}  // namespace sluice
