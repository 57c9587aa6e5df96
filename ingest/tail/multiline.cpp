#include "ingest/tail/multiline.h"

#include <re2/re2.h>

#include "common/error.h"

namespace sluice {

namespace {

std::unique_ptr<re2::RE2> compile(const std::string& pattern) {
    re2::RE2::Options options;
    options.set_log_errors(false);
    return std::make_unique<re2::RE2>(pattern, options);
}

}  // namespace

std::string multiline_pattern_error(const std::string& pattern) {
    auto re = compile(pattern);
    return re->ok() ? std::string() : re->error();
}

multiline_assembler::multiline_assembler(const multiline_config& config, size_t max_line_bytes)
    : start_(compile(config.start)),
      max_lines_(config.max_lines == 0 ? 1 : config.max_lines),
      max_bytes_(max_line_bytes) {
    if (!start_->ok()) {
        throw error("multiline.start '" + config.start + "' is not a valid RE2 pattern: " +
                    start_->error());
    }
}

multiline_assembler::~multiline_assembler() = default;
multiline_assembler::multiline_assembler(multiline_assembler&&) noexcept = default;
multiline_assembler& multiline_assembler::operator=(multiline_assembler&&) noexcept = default;

void multiline_assembler::add(std::string_view line, int64_t end_offset, batch& out) {
    const bool starts = re2::RE2::PartialMatch(line, *start_);
    bool open_anyway = after_limit_;
    if (has_open()) {
        if (starts) {
            flush(out);
        } else if (event_.size() + 1 + line.size() > max_bytes_) {
            // Closed before the line that would not fit, so nothing is cut: that line begins
            // the next event.
            flush(out);
            open_anyway = true;
        }
    }
    if (has_open()) {
        event_.push_back('\n');
        event_.append(line);
    } else {
        const std::string_view kept = line.substr(0, max_bytes_);
        truncated_ += kept.size() < line.size() ? 1 : 0;
        if (!starts && !open_anyway) {
            // Nothing to continue: an event of its own.
            out.add_line(kept);
            safe_offset_ = end_offset;
            return;
        }
        after_limit_ = false;
        event_.assign(kept);
    }
    ++lines_;
    open_end_ = end_offset;
    if (lines_ >= max_lines_) {
        // Closed by max_lines: the next line begins a new event, whatever it matches.
        flush(out);
        after_limit_ = true;
    }
}

void multiline_assembler::flush(batch& out) {
    if (!has_open()) {
        return;
    }
    out.add_line(event_);
    event_.clear();
    lines_ = 0;
    safe_offset_ = open_end_;
}

}  // namespace sluice
