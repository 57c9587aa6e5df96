// Batches: the unit that crosses threads. A batch holds many events of one source in one
// contiguous buffer (each line followed by '\n') plus a compact record per event.
// A batch is built by one thread, then frozen (shared_ptr<const batch>) and read by many.
#pragma once

#include <cstdint>
#include <climits>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

using source_id = uint16_t;

// A growable byte buffer that never zero-fills: sockets read straight into its tail.
class byte_buffer {
public:
    byte_buffer() = default;
    explicit byte_buffer(size_t capacity) { reserve(capacity); }

    char* data() { return data_.get(); }
    const char* data() const { return data_.get(); }
    size_t size() const { return size_; }
    size_t capacity() const { return capacity_; }
    size_t free_space() const { return capacity_ - size_; }
    char* tail() { return data_.get() + size_; }

    // Makes room for `capacity` bytes in all, keeping the contents.
    void reserve(size_t capacity);
    // Declares `n` bytes written at tail().
    void commit(size_t n) { size_ += n; }
    void resize(size_t n) {
        reserve(n);
        size_ = n;
    }
    void append(const char* p, size_t n) {
        if (n == 0) {
            return;  // p and tail() may be null then, which memcpy does not allow
        }
        if (free_space() < n) {
            reserve(grow_target(size_ + n));
        }
        std::memcpy(tail(), p, n);
        size_ += n;
    }
    void push_back(char c) {
        if (size_ == capacity_) {
            reserve(grow_target(size_ + 1));
        }
        data_[size_++] = c;
    }
    void clear() { size_ = 0; }
    // Replaces the storage by one just large enough for the contents.
    void shrink_to_fit();

private:
    size_t grow_target(size_t need) const { return std::max(need, capacity_ * 2); }

    std::unique_ptr<char[]> data_;
    size_t size_ = 0;
    size_t capacity_ = 0;
};

// One event inside a batch: a line at [offset, offset + length) of the batch buffer.
// The byte at offset + length is always '\n', and the next event starts right after it.
struct event_record {
    uint32_t offset;
    uint32_t length;
};

// A piece of text of a batch: in its buffer, or (in_extra) in its extra text. A null ref
// (length == null_length) is SQL NULL.
struct text_ref {
    static constexpr uint32_t null_length = UINT32_MAX;
    uint32_t offset = 0;
    uint32_t length = null_length;
    bool in_extra = false;
    bool is_null() const { return length == null_length; }
};

// What a codec decoded from one event (SPEC's columns beyond the line itself).
struct event_meta {
    static constexpr int64_t no_ts = INT64_MIN;
    int64_t ts_ns = no_ts;  // the event's own time
    int8_t severity = -1;   // -1 = NULL
    int8_t facility = -1;
    text_ref host;          // syslog HOSTNAME; null: the batch's peer host
    text_ref app;
    text_ref procid;
    text_ref msgid;
    text_ref message;       // null: the whole line
    text_ref fields;        // a JSON object, or null
    text_ref topic;         // ZeroMQ SUB topic, or null
};

class batch {
public:
    explicit batch(source_id source, size_t capacity = 0) : source_(source), buffer_(capacity) {}

    source_id source() const { return source_; }

    // Appends one event: copies `line` and a '\n' into the buffer.
    void add_line(std::string_view line) {
        auto offset = static_cast<uint32_t>(buffer_.size());
        buffer_.append(line.data(), line.size());
        buffer_.push_back('\n');
        events_.push_back({offset, static_cast<uint32_t>(line.size())});
    }
    // Records an event whose bytes (and the '\n' after them) are already in the buffer.
    void add_event(uint32_t offset, uint32_t length) { events_.push_back({offset, length}); }

    size_t event_count() const { return events_.size(); }
    bool empty() const { return events_.empty(); }
    std::string_view line(size_t i) const {
        return {buffer_.data() + events_[i].offset, events_[i].length};
    }
    const std::vector<event_record>& events() const { return events_; }
    std::vector<event_record>& events() { return events_; }
    byte_buffer& buffer() { return buffer_; }
    const byte_buffer& buffer() const { return buffer_; }

    // Every event's line and its '\n', back to back: the buffer holds nothing else once the
    // batch is sealed, so the text file sink writes it unchanged.
    std::string_view text() const { return {buffer_.data(), buffer_.size()}; }

    // Decoded columns, parallel to events(); empty when nothing was decoded (text codec).
    bool has_meta() const { return !meta_.empty(); }
    const event_meta& meta(size_t i) const { return meta_[i]; }
    std::vector<event_meta>& meta() { return meta_; }
    // Generated text that meta refers to (structured data as JSON, topics).
    std::string& extra() { return extra_; }
    const std::string& extra() const { return extra_; }
    // The text of a ref; data() is nullptr for a null ref.
    std::string_view view(const text_ref& r) const {
        if (r.is_null()) {
            return {};
        }
        return {(r.in_extra ? extra_.data() : buffer_.data()) + r.offset, r.length};
    }
    // The event's message column: the decoded message, else the whole line.
    std::string_view message(size_t i) const {
        if (has_meta() && !meta_[i].message.is_null()) {
            return view(meta_[i].message);
        }
        return line(i);
    }

    // Sum of the line lengths, without the '\n's.
    uint64_t payload_bytes() const;
    // Everything this batch holds in memory: what the queue's max_bytes counts.
    uint64_t cost_bytes() const {
        return sizeof(batch) + buffer_.capacity() + events_.capacity() * sizeof(event_record) +
               meta_.capacity() * sizeof(event_meta) + extra_.capacity() + origin.capacity() +
               host.capacity() + file.capacity() + source_name.capacity() + 32 /* shared_ptr control block */;
    }
    // Drops spare capacity when the batch uses less than half of it, so that a trickle of
    // short reads does not cost a full read buffer per event in the queue.
    void shrink_if_sparse();

    int64_t received_ns = 0;  // unix ns when the source read these bytes
    std::string origin;       // peer "ip:port", file path, endpoint
    std::string host;         // peer address for the `host` column
    std::string file;         // a tailed file's path (the `file` column); else empty
    int64_t position = -1;    // source-defined delivery position (file offset past the batch);
                              //   >= 0: acknowledged to the source once delivered
    uint32_t stream = 0;      // the source's stream the position belongs to (a file)
    std::string source_name;  // restored from an agent (the nats source): the name the sinks
                              //   store; empty: the source's own

private:
    source_id source_;
    byte_buffer buffer_;
    std::vector<event_record> events_;
    std::vector<event_meta> meta_;
    std::string extra_;
};

using batch_ptr = std::shared_ptr<const batch>;

// The source name the sinks store for `b`'s events: the one an agent gave them, else the name
// of the source that read them (`names`, by source id).
inline const std::string& source_label(const batch& b, const std::vector<std::string>& names) {
    return b.source_name.empty() ? names.at(b.source()) : b.source_name;
}

}  // namespace sluice
