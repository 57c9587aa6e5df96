#include "ingest/framing.h"

#include <algorithm>
#include <cstring>

#include "common/ascii.h"

namespace sluice {

namespace {

constexpr size_t max_length_digits = 9;

}  // namespace

std::optional<framing> parse_framing(std::string_view s) {
    if (s == "newline") {
        return framing::newline;
    }
    if (s == "octet_counting") {
        return framing::octet_counting;
    }
    return std::nullopt;
}

std::optional<message_framing> parse_message_framing(std::string_view s) {
    if (s == "message") {
        return message_framing::message;
    }
    if (s == "newline") {
        return message_framing::newline;
    }
    return std::nullopt;
}

uint64_t add_message(batch& b, std::string_view message, bool split, size_t max_line_bytes) {
    if (!split) {
        if (!message.empty() && message.back() == '\n') {
            message.remove_suffix(1);
        }
        if (!message.empty() && message.back() == '\r') {
            message.remove_suffix(1);
        }
        uint64_t truncated = 0;
        if (message.size() > max_line_bytes) {
            message = message.substr(0, max_line_bytes);
            ++truncated;
        }
        b.add_line(message);
        return truncated;
    }
    if (message.empty()) {
        return 0;
    }
    // A frame of many lines is copied in one go and its lines are cut in place, as the framer
    // does: most lines are already "line\n" and stay where they landed; only a stripped '\r',
    // an empty line or a cut moves the rest down. Copying line by line cost a call per line.
    byte_buffer& buf = b.buffer();
    const size_t start = buf.size();
    const size_t end = start + message.size();
    if (buf.capacity() < end + 1) {  // + 1: the '\n' after a last line that has none
        buf.reserve(std::max(end + 1, buf.capacity() * 2));
    }
    std::memcpy(buf.tail(), message.data(), message.size());
    char* const p = buf.data();
    uint64_t truncated = 0;
    size_t out = start;  // where the next event goes; never past `in`
    size_t in = start;
    while (in < end) {
        const void* found = std::memchr(p + in, '\n', end - in);
        const size_t nl =
            found == nullptr ? end : static_cast<size_t>(static_cast<const char*>(found) - p);
        size_t len = nl - in;
        if (len > 0 && p[in + len - 1] == '\r') {
            --len;
        }
        if (len > 0) {  // an empty line is no event
            if (len > max_line_bytes) {
                len = max_line_bytes;
                ++truncated;
            }
            if (out != in) {
                std::memmove(p + out, p + in, len);
            }
            p[out + len] = '\n';
            b.add_event(static_cast<uint32_t>(out), static_cast<uint32_t>(len));
            out += len + 1;
        }
        in = nl + 1;
    }
    buf.resize(out);
    return truncated;
}

void framer::emit(batch& b, size_t src, size_t len) {
    char* buf = b.buffer().data();
    if (src != framed_end_) {
        std::memmove(buf + framed_end_, buf + src, len);
    }
    buf[framed_end_ + len] = '\n';
    b.add_event(static_cast<uint32_t>(framed_end_), static_cast<uint32_t>(len));
    framed_end_ += len + 1;
}

bool framer::frame_line(batch& b, size_t& scan) {
    const char* buf = b.buffer().data();
    const size_t size = b.buffer().size();
    if (skip_to_newline_) {
        const void* nl = std::memchr(buf + scan, '\n', size - scan);
        if (nl == nullptr) {
            scan = size;
            return false;
        }
        scan = static_cast<size_t>(static_cast<const char*>(nl) - buf) + 1;
        skip_to_newline_ = false;
        return true;
    }
    const size_t from = scan + scanned_;
    const void* found = std::memchr(buf + from, '\n', size - from);
    if (found == nullptr) {
        const size_t pending = size - scan;
        // A line of exactly max_line_ bytes may end in "\r\n": with only its '\r' here, it
        // is not over-long yet. Deciding now would make truncation depend on the reads.
        const bool may_fit = pending == max_line_ + 1 && buf[size - 1] == '\r';
        if (pending > max_line_ && !may_fit) {
            // Keep the head of an over-long line and drop the rest up to its newline, so one
            // line can never grow the buffer without bound.
            emit(b, scan, max_line_);
            ++truncated_;
            skip_to_newline_ = true;
            scanned_ = 0;
            scan = size;
        } else {
            scanned_ = pending;
        }
        return false;
    }
    const size_t nl = static_cast<size_t>(static_cast<const char*>(found) - buf);
    size_t len = nl - scan;
    if (len > 0 && buf[nl - 1] == '\r') {
        --len;
    }
    if (len > max_line_) {
        len = max_line_;
        ++truncated_;
    }
    if (len > 0 || kind_ == framing::newline) {
        emit(b, scan, len);
    }
    scan = nl + 1;
    scanned_ = 0;
    return true;
}

bool framer::frame_octet(batch& b, size_t& scan) {
    const char* buf = b.buffer().data();
    const size_t size = b.buffer().size();
    if (discard_ > 0) {
        const size_t n = std::min(discard_, size - scan);
        scan += n;
        discard_ -= n;
        return discard_ == 0;
    }
    if (skip_to_newline_ || !is_ascii_digit(buf[scan])) {
        return frame_line(b, scan);
    }
    size_t j = scan;
    while (j < size && is_ascii_digit(buf[j]) && j - scan <= max_length_digits) {
        ++j;
    }
    if (j == size && j - scan <= max_length_digits) {
        return false;  // the length is not complete yet
    }
    if (j == size || buf[j] != ' ' || j - scan > max_length_digits || buf[scan] == '0') {
        return frame_line(b, scan);  // digits, but no valid "LEN SP": a plain line
    }
    size_t len = 0;
    for (size_t i = scan; i < j; ++i) {
        len = len * 10 + static_cast<size_t>(buf[i] - '0');
    }
    const size_t data = j + 1;
    const size_t have = size - data;
    if (have >= len && len <= max_line_) {
        emit(b, data, len);
        scan = data + len;
        return true;
    }
    if (len > max_line_ && have >= max_line_) {
        emit(b, data, max_line_);
        ++truncated_;
        scan = data + max_line_;
        discard_ = len - max_line_;
        return true;
    }
    return false;
}

void framer::consume(batch& b) {
    size_t scan = framed_end_;
    const size_t first = scan;
    const size_t size = b.buffer().size();
    const size_t events_before = b.event_count();
    size_t recorded = 0;
    auto record = [&] {
        // An over-long line's head is emitted before its newline arrives: its end is then where
        // the scan stands, like any other.
        while (ends_ != nullptr && b.event_count() - events_before > recorded) {
            ends_->push_back(consumed_ + (scan - first));
            ++recorded;
        }
    };
    while (scan < size) {
        const bool progressed =
            kind_ == framing::newline ? frame_line(b, scan) : frame_octet(b, scan);
        record();
        if (!progressed) {
            break;
        }
    }
    consumed_ += scan - first;
    // Move the unframed rest down against the framed events.
    const size_t rest = size - scan;
    if (scan != framed_end_ && rest != 0) {
        std::memmove(b.buffer().data() + framed_end_, b.buffer().data() + scan, rest);
    }
    b.buffer().resize(framed_end_ + rest);
}

void framer::carry_over(batch& from, batch& to) {
    const size_t rest = from.buffer().size() - framed_end_;
    to.buffer().reserve(rest);
    to.buffer().append(from.buffer().data() + framed_end_, rest);
    from.buffer().resize(framed_end_);
    framed_end_ = 0;
}

void framer::finish(batch& b) {
    const size_t size = b.buffer().size();
    size_t start = framed_end_;
    // Every pending byte is used up here, whether it makes an event or not; the framer can go
    // on framing what the stream brings later (a file source flushing an unterminated line).
    consumed_ += size - framed_end_;
    scanned_ = 0;
    if (start == size || skip_to_newline_ || discard_ > 0) {
        b.buffer().resize(framed_end_);
        return;
    }
    const char* buf = b.buffer().data();
    if (kind_ == framing::octet_counting && is_ascii_digit(buf[start])) {
        size_t j = start;
        while (j < size && is_ascii_digit(buf[j])) {
            ++j;
        }
        if (j < size && buf[j] == ' ' && j - start <= max_length_digits) {
            start = j + 1;  // a frame cut short: its data without the length
        }
    }
    size_t len = size - start;
    if (len > 0 && buf[start + len - 1] == '\r') {
        --len;
    }
    if (len == 0) {
        // A lone '\r' or a length header with no data: nothing of a message to keep.
        b.buffer().resize(framed_end_);
        return;
    }
    if (len > max_line_) {
        len = max_line_;
        ++truncated_;
    }
    // The '\n' goes one past the data: make room for it.
    b.buffer().reserve(size + 1);
    emit(b, start, len);
    b.buffer().resize(framed_end_);
    if (ends_ != nullptr) {
        ends_->push_back(consumed_);
    }
}

}  // namespace sluice
