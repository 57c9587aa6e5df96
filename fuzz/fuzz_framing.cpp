// libFuzzer target for framer: the input, cut into reads whose sizes come from its own bytes,
// is framed in both modes with batches sealed at chance points. After every step the batch
// must hold its events back to back, each line within max_line_bytes and followed by '\n';
// newline framing must also match a plain split of the whole input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ingest/framing.h"
#include "queue/event.h"

namespace {

void check(bool ok) {
    if (!ok) {
        std::abort();
    }
}

// Small deterministic generator: the same input always takes the same path.
struct xorshift {
    uint64_t state;
    uint64_t next() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        return state;
    }
};

// Bytes of `b` held by its events (each line and its '\n'), after checking every record.
size_t check_events(const sluice::batch& b, size_t max_line) {
    const auto& buf = b.buffer();
    size_t expected_offset = 0;
    for (const sluice::event_record& e : b.events()) {
        check(e.offset == expected_offset);
        check(e.length <= max_line);
        check(size_t{e.offset} + e.length < buf.size());
        check(buf.data()[e.offset + e.length] == '\n');
        expected_offset = size_t{e.offset} + e.length + 1;
    }
    return expected_offset;
}

void check_sealed(const sluice::batch& b, size_t max_line) {
    check(check_events(b, max_line) == b.text().size());
}

// Newline framing by definition: split on '\n', drop one trailing '\r', cut to max_line; an
// unterminated last piece is a line too, unless nothing is left of it.
std::vector<std::string> reference_lines(std::string_view data, size_t max_line) {
    std::vector<std::string> lines;
    size_t start = 0;
    while (start < data.size()) {
        size_t nl = data.find('\n', start);
        const bool terminated = nl != std::string_view::npos;
        if (!terminated) {
            nl = data.size();
        }
        std::string_view l = data.substr(start, nl - start);
        if (!l.empty() && l.back() == '\r') {
            l.remove_suffix(1);
        }
        if (!terminated && l.empty()) {
            break;  // a trailing lone '\r' carries no message: finish() keeps nothing
        }
        lines.emplace_back(l.substr(0, max_line));
        start = nl + 1;
    }
    return lines;
}

void run(sluice::framing kind, std::string_view data, size_t max_line, uint64_t seed) {
    sluice::framer f(kind, max_line);
    xorshift rng{seed | 1};
    auto current = std::make_unique<sluice::batch>(0);
    std::vector<std::string> lines;
    auto keep = [&](const sluice::batch& b) {
        check_sealed(b, max_line);
        for (size_t i = 0; i < b.event_count(); ++i) {
            lines.emplace_back(b.line(i));
        }
    };
    size_t at = 0;
    while (at < data.size()) {
        // Mostly short reads, so that lines and frames straddle them.
        const uint64_t r = rng.next();
        size_t n = (r & 0xff) % 17 + 1;
        if ((r >> 8) % 8 == 0) {
            n = (r >> 16) % 1024 + 1;
        }
        n = std::min(n, data.size() - at);
        current->buffer().append(data.data() + at, n);
        at += n;
        f.consume(*current);
        const size_t framed = check_events(*current, max_line);
        check(framed + f.pending_bytes(*current) == current->buffer().size());
        if ((r >> 32) % 4 == 0) {
            auto next = std::make_unique<sluice::batch>(0);
            const size_t pending = f.pending_bytes(*current);
            f.carry_over(*current, *next);
            check(next->buffer().size() == pending);
            check(f.pending_bytes(*next) == pending);
            keep(*current);
            current = std::move(next);
        }
    }
    f.finish(*current);
    check(f.pending_bytes(*current) == 0);
    keep(*current);
    if (kind == sluice::framing::newline) {
        check(lines == reference_lines(data, max_line));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) {
        return 0;
    }
    // Byte 0 picks max_line_bytes (small, to reach truncation often); byte 1 seeds the reads.
    const size_t max_line = data[0] < 200 ? size_t{data[0]} % 64 + 1 : size_t{65536};
    uint64_t seed = 0x9e3779b97f4a7c15ULL * (data[1] + 1);
    for (size_t i = 2; i < size; ++i) {
        seed = (seed ^ data[i]) * 0x100000001b3ULL;
    }
    const std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);
    run(sluice::framing::newline, stream, max_line, seed);
    run(sluice::framing::octet_counting, stream, max_line, seed);
    return 0;
}
