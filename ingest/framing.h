// framer: cuts a byte stream into events in place, inside the batch buffer the bytes were
// read into. Newline framing strips a trailing '\r'; octet counting (RFC 6587) reads
// "LEN SP MSG" frames and falls back to newline framing for a frame that does not start with
// a digit, as rsyslog does. Lines over max_line_bytes are truncated and counted.
// One framer per stream (connection, file); not thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "queue/event.h"

namespace sluice {

enum class framing { newline, octet_counting };

std::optional<framing> parse_framing(std::string_view s);

// ZeroMQ frames, in and out. message: one event per frame. newline: one per line of a frame,
// so that a sender pays ZeroMQ's per-message cost once for many lines.
enum class message_framing { message, newline };

std::optional<message_framing> parse_message_framing(std::string_view s);

// Message sources (UDP, ZeroMQ) fill a batch to about this many bytes before pushing it.
inline constexpr size_t message_batch_bytes = 64 * 1024;

// Adds one self-contained message (a datagram, a ZeroMQ frame) to `b`. Whole: one event, less
// one trailing "\n" or "\r\n". Split: one event per line, each less a trailing '\r', empty
// lines skipped, the message copied once and its lines cut in place. Events over
// max_line_bytes are cut; returns how many were.
uint64_t add_message(batch& b, std::string_view message, bool split, size_t max_line_bytes);

class framer {
public:
    framer(framing kind, size_t max_line_bytes) : kind_(kind), max_line_(max_line_bytes) {}

    // Frames the bytes of b.buffer() past what earlier calls framed. Complete events are
    // compacted into place as "line\n" and recorded in b; the unframed rest stays at the end
    // of the buffer.
    void consume(batch& b);
    // Moves the unframed rest from the end of `from` into `to`, leaving `from` sealed (its
    // buffer holds exactly its events).
    void carry_over(batch& from, batch& to);
    // End of stream, or of a line that waited too long for its newline: the unframed rest, if
    // any, becomes a last event. Framing may go on after it.
    void finish(batch& b);

    // Bytes of `b` not yet framed (the partial line or frame).
    size_t pending_bytes(const batch& b) const { return b.buffer().size() - framed_end_; }
    // When set, every event framed from now on appends to `ends` the number of stream bytes
    // consumed up to and including its raw line or frame (counted from the framer's start),
    // so a file source knows the exact offset after each line despite '\r' stripping and
    // truncation. Null (the default) records nothing.
    void record_ends(std::vector<uint64_t>* ends) { ends_ = ends; }
    // Events cut to max_line_bytes since the last call.
    uint64_t take_truncated() {
        uint64_t n = truncated_;
        truncated_ = 0;
        return n;
    }

private:
    // Appends [src, src + len) as an event at framed_end_, with a '\n'. `len` is already capped.
    void emit(batch& b, size_t src, size_t len);
    // One newline-terminated line at [start, nl). Returns false if no newline yet.
    bool frame_line(batch& b, size_t& scan);
    bool frame_octet(batch& b, size_t& scan);

    framing kind_;
    size_t max_line_;
    size_t framed_end_ = 0;       // end of the compacted events in the current buffer
    size_t scanned_ = 0;          // bytes after framed_end_ already searched for a newline
    size_t discard_ = 0;          // octet counting: bytes of an over-long frame still to skip
    bool skip_to_newline_ = false;  // the rest of an over-long line is being discarded
    uint64_t truncated_ = 0;
    uint64_t consumed_ = 0;                 // stream bytes framed or skipped so far
    std::vector<uint64_t>* ends_ = nullptr;  // see record_ends
};

}  // namespace sluice
