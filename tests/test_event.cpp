// Tests for byte_buffer and batch: growth without zero-filling, the "line\n" back-to-back
// invariant of a batch buffer, and what a batch costs the queue.
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

#include "queue/event.h"

using sluice::batch;
using sluice::byte_buffer;

namespace {

std::string contents(const byte_buffer& b) { return std::string(b.data(), b.size()); }

// The batch invariant: the buffer is exactly every event's line and '\n', back to back, and
// each record points at its line.
void check_back_to_back(const batch& b, const std::vector<std::string>& lines) {
    REQUIRE(b.event_count() == lines.size());
    std::string expected;
    for (size_t i = 0; i < lines.size(); ++i) {
        CHECK(b.events()[i].offset == expected.size());
        CHECK(b.events()[i].length == lines[i].size());
        CHECK(b.line(i) == lines[i]);
        CHECK(b.buffer().data()[b.events()[i].offset + b.events()[i].length] == '\n');
        expected += lines[i];
        expected += '\n';
    }
    CHECK(b.text() == expected);
    CHECK(b.buffer().size() == expected.size());
}

}  // namespace

TEST_CASE("byte_buffer starts empty and reserve keeps the contents", "[event]") {
    byte_buffer b;
    CHECK(b.size() == 0);
    CHECK(b.capacity() == 0);
    CHECK(b.free_space() == 0);

    b.reserve(16);
    CHECK(b.capacity() == 16);
    CHECK(b.size() == 0);
    CHECK(b.free_space() == 16);

    b.append("hello", 5);
    const char* before = b.data();
    b.reserve(8);  // smaller than the capacity: nothing happens
    CHECK(b.capacity() == 16);
    CHECK(b.data() == before);

    b.reserve(1000);
    CHECK(b.capacity() == 1000);
    CHECK(contents(b) == "hello");

    byte_buffer sized(64);
    CHECK(sized.capacity() == 64);
    CHECK(sized.size() == 0);
}

TEST_CASE("byte_buffer append and push_back grow and keep every byte", "[event]") {
    byte_buffer b;
    std::string expected;
    for (int i = 0; i < 1000; ++i) {
        const std::string piece = std::to_string(i) + ",";
        b.append(piece.data(), piece.size());
        expected += piece;
        if (i % 7 == 0) {
            b.push_back('|');
            expected += '|';
        }
        REQUIRE(b.size() == expected.size());
        REQUIRE(b.capacity() >= b.size());
    }
    CHECK(contents(b) == expected);

    // Appending nothing changes nothing.
    const size_t capacity = b.capacity();
    b.append("", 0);
    CHECK(contents(b) == expected);
    CHECK(b.capacity() == capacity);
}

TEST_CASE("byte_buffer growth is geometric, not one read at a time", "[event]") {
    byte_buffer b;
    size_t reallocations = 0;
    const char* data = b.data();
    for (int i = 0; i < 100'000; ++i) {
        b.push_back('x');
        if (b.data() != data) {
            ++reallocations;
            data = b.data();
        }
    }
    CHECK(b.size() == 100'000);
    CHECK(reallocations < 40);
}

TEST_CASE("byte_buffer tail, commit, resize and clear", "[event]") {
    byte_buffer b(32);
    std::memcpy(b.tail(), "abc", 3);  // what a socket read does
    b.commit(3);
    CHECK(contents(b) == "abc");
    CHECK(b.free_space() == 29);

    b.resize(2);
    CHECK(contents(b) == "ab");
    b.resize(64);  // growing keeps the head
    CHECK(b.size() == 64);
    CHECK(b.capacity() >= 64);
    CHECK(std::string_view(b.data(), 2) == "ab");

    const size_t capacity = b.capacity();
    b.clear();
    CHECK(b.size() == 0);
    CHECK(b.capacity() == capacity);
}

TEST_CASE("byte_buffer shrink_to_fit keeps the contents in just enough storage", "[event]") {
    byte_buffer b(4096);
    b.append("0123456789", 10);
    b.shrink_to_fit();
    CHECK(b.capacity() == 10);
    CHECK(b.free_space() == 0);
    CHECK(contents(b) == "0123456789");

    // Still growable afterwards.
    b.push_back('!');
    CHECK(contents(b) == "0123456789!");

    byte_buffer empty(128);
    empty.shrink_to_fit();
    CHECK(empty.capacity() == 0);
    CHECK(empty.size() == 0);
    empty.append("x", 1);
    CHECK(contents(empty) == "x");
}

TEST_CASE("batch add_line keeps the buffer exactly its lines back to back", "[event]") {
    batch b(3);
    CHECK(b.source() == 3);
    CHECK(b.empty());
    CHECK(b.event_count() == 0);
    CHECK(b.text().empty());
    CHECK(b.payload_bytes() == 0);

    std::vector<std::string> lines = {"first line", "", "third\tline with tab", "x"};
    for (const auto& l : lines) {
        b.add_line(l);
    }
    CHECK_FALSE(b.empty());
    check_back_to_back(b, lines);
    CHECK(b.text() == "first line\n\nthird\tline with tab\nx\n");
    CHECK(b.payload_bytes() == 10 + 0 + 19 + 1);

    // Many lines, forcing the buffer to grow many times: the invariant holds throughout.
    batch big(0);
    std::vector<std::string> many;
    for (int i = 0; i < 5000; ++i) {
        many.push_back("line " + std::to_string(i) + std::string(static_cast<size_t>(i % 13), '#'));
        big.add_line(many.back());
    }
    check_back_to_back(big, many);
}

TEST_CASE("batch add_event records bytes already in the buffer", "[event]") {
    batch b(0, 64);
    const std::string_view raw = "alpha\nbeta\n";
    b.buffer().append(raw.data(), raw.size());
    b.add_event(0, 5);
    b.add_event(6, 4);
    check_back_to_back(b, {"alpha", "beta"});
}

TEST_CASE("batch cost_bytes counts capacity, not just contents", "[event]") {
    batch small(0);
    batch reserved(0, 1 << 16);
    CHECK(reserved.cost_bytes() - small.cost_bytes() == (1u << 16));
    CHECK(small.cost_bytes() >= sizeof(batch));

    // Every capacity counts: buffer, records, the strings.
    batch b(1, 100);
    b.add_line("abc");
    CHECK(b.cost_bytes() >= sizeof(batch) + b.buffer().capacity() +
                                b.events().capacity() * sizeof(sluice::event_record) +
                                b.origin.capacity() + b.host.capacity());
    uint64_t before = b.cost_bytes();
    const size_t origin_capacity = b.origin.capacity();
    b.origin = std::string(200, 'o');
    CHECK(b.cost_bytes() - before == b.origin.capacity() - origin_capacity);
    before = b.cost_bytes();
    const size_t records_capacity = b.events().capacity();
    b.events().reserve(100);
    CHECK(b.cost_bytes() - before ==
          (b.events().capacity() - records_capacity) * sizeof(sluice::event_record));
    CHECK(b.cost_bytes() > b.payload_bytes() + 200);

    // Adding a line into spare capacity costs nothing more for the buffer.
    batch c(0, 4096);
    c.events().reserve(16);
    const uint64_t spare = c.cost_bytes();
    c.add_line("short");
    CHECK(c.cost_bytes() == spare);
}

TEST_CASE("batch shrink_if_sparse drops spare capacity only when under half used", "[event]") {
    SECTION("sparse: shrinks buffer and records, contents unchanged") {
        batch b(0, 64 * 1024);
        b.events().reserve(1024);
        b.add_line("one");
        b.add_line("two");
        const uint64_t before = b.cost_bytes();
        b.shrink_if_sparse();
        CHECK(b.buffer().capacity() == b.buffer().size());
        CHECK(b.events().capacity() < 1024);
        CHECK(b.cost_bytes() < before);
        check_back_to_back(b, {"one", "two"});
    }
    SECTION("dense: keeps its storage") {
        batch b(0, 16);
        b.add_line("0123456789");  // 11 of 16 bytes
        const size_t capacity = b.buffer().capacity();
        b.shrink_if_sparse();
        CHECK(b.buffer().capacity() == capacity);
        check_back_to_back(b, {"0123456789"});
    }
    SECTION("empty batch") {
        batch b(0, 4096);
        b.shrink_if_sparse();
        CHECK(b.buffer().capacity() == 0);
        CHECK(b.text().empty());
        b.add_line("after");
        check_back_to_back(b, {"after"});
    }
}
