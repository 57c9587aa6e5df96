// multiline: joins the lines of one file into events (a Java stack trace becomes one event).
// A line matching `start` begins an event; the lines after it that do not match join it with
// "\n". An event ends at the next start line, after `max_lines` lines, before a line that would
// take it past `max_line_bytes` (the next line then begins a new event, whatever it matches),
// or when flushed (idle `timeout`, end of a rotated file, shutdown). A line that does not match with no event open
// is an event of its own. One assembler per file; not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "queue/event.h"

namespace re2 {
class RE2;
}

namespace sluice {

struct multiline_config {
    std::string start;                              // RE2 pattern of a first line; required
    uint64_t max_lines = 500;                       // lines per event, at most
    std::chrono::nanoseconds timeout{std::chrono::seconds(1)};  // an open event's idle time
};

// Compiles `pattern`; returns RE2's message when it is not a valid pattern, else "".
std::string multiline_pattern_error(const std::string& pattern);

class multiline_assembler {
public:
    // Throws sluice::error when `config.start` does not compile.
    multiline_assembler(const multiline_config& config, size_t max_line_bytes);
    ~multiline_assembler();
    multiline_assembler(multiline_assembler&&) noexcept;
    multiline_assembler& operator=(multiline_assembler&&) noexcept;

    // One line (without its "\n") whose end, newline included, is at byte `end_offset` of the
    // file. Finished events are appended to `out`.
    void add(std::string_view line, int64_t end_offset, batch& out);
    // Emits the open event, if any, into `out`.
    void flush(batch& out);

    bool has_open() const { return lines_ != 0; }
    // The file offset before which every line is in an emitted event: where reading would
    // resume after a restart, so a checkpoint never lands inside an open event.
    int64_t safe_offset() const { return safe_offset_; }
    // Events cut to max_line_bytes since the last call.
    uint64_t take_truncated() {
        const uint64_t n = truncated_;
        truncated_ = 0;
        return n;
    }

private:

    std::unique_ptr<re2::RE2> start_;
    uint64_t max_lines_;
    size_t max_bytes_;
    std::string event_;
    uint64_t lines_ = 0;        // lines in the open event; 0: none open
    bool after_limit_ = false;  // the last event ended at a limit: the next line opens one
    int64_t safe_offset_ = 0;   // end of the last emitted event's last line
    int64_t open_end_ = 0;      // end offset of the open event's last line
    uint64_t truncated_ = 0;
};

}  // namespace sluice
