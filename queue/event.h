// Batches: the unit that crosses threads. A batch holds many events of one source in one
// contiguous buffer (each line followed by '\n') plus a compact record per event.
// A batch is built by one thread, then frozen (shared_ptr<const batch>) and read by many.
#pragma once

#include <cstdint>
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

    // Sum of the line lengths, without the '\n's.
    uint64_t payload_bytes() const;
    // Everything this batch holds in memory: what the queue's max_bytes counts.
    uint64_t cost_bytes() const {
        return sizeof(batch) + buffer_.capacity() + events_.capacity() * sizeof(event_record) +
               origin.capacity() + host.capacity() + 32 /* shared_ptr control block */;
    }
    // Drops spare capacity when the batch uses less than half of it, so that a trickle of
    // short reads does not cost a full read buffer per event in the queue.
    void shrink_if_sparse();

    int64_t received_ns = 0;  // unix ns when the source read these bytes
    std::string origin;       // peer "ip:port", file path, endpoint
    std::string host;         // peer address for the `host` column
    int64_t position = -1;    // source-defined delivery position (file offset past the batch)

private:
    source_id source_;
    byte_buffer buffer_;
    std::vector<event_record> events_;
};

using batch_ptr = std::shared_ptr<const batch>;

}  // namespace sluice
