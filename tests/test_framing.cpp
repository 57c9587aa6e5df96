// Tests for framer: newline and octet-counted (RFC 6587) framing of a byte stream that
// arrives in arbitrary reads, with truncation, carry-over into a new batch and end of stream.
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

#include "ingest/framing.h"
#include "queue/event.h"

using sluice::batch;
using sluice::framer;
using sluice::framing;

namespace {

using lines_t = std::vector<std::string>;

std::string joined(const batch& b) {
    std::string s;
    for (size_t i = 0; i < b.event_count(); ++i) {
        s += b.line(i);
        s += '\n';
    }
    return s;
}

// Drives a framer as a source does: each read lands at the end of the current batch's buffer
// and is framed; seal() moves the partial line into a fresh batch and keeps the sealed one's
// events; finish() ends the stream.
struct stream {
    framer f;
    std::unique_ptr<batch> current = std::make_unique<batch>(0);
    lines_t lines;
    uint64_t truncated = 0;
    size_t sealed_batches = 0;

    stream(framing kind, size_t max_line_bytes) : f(kind, max_line_bytes) {}

    void read(std::string_view bytes) {
        current->buffer().append(bytes.data(), bytes.size());
        f.consume(*current);
        // Framed events come first, back to back; the unframed rest follows them.
        const std::string framed = joined(*current);
        REQUIRE(current->buffer().size() >= framed.size());
        REQUIRE(std::string_view(current->buffer().data(), framed.size()) == framed);
        REQUIRE(f.pending_bytes(*current) == current->buffer().size() - framed.size());
    }
    void seal() {
        auto next = std::make_unique<batch>(0);
        const size_t pending = f.pending_bytes(*current);
        const std::string rest(current->buffer().data() + current->buffer().size() - pending,
                               pending);
        f.carry_over(*current, *next);
        REQUIRE(std::string_view(next->buffer().data(), next->buffer().size()) == rest);
        keep(*current);
        current = std::move(next);
    }
    void finish() {
        f.finish(*current);
        keep(*current);
        current = std::make_unique<batch>(0);
    }
    void keep(const batch& b) {
        // A sealed batch's buffer is exactly its events.
        REQUIRE(b.text() == joined(b));
        for (size_t i = 0; i < b.event_count(); ++i) {
            lines.emplace_back(b.line(i));
        }
        truncated += f.take_truncated();
        ++sealed_batches;
    }
};

struct result {
    lines_t lines;
    uint64_t truncated = 0;
};

// Feeds `data` in chunks of 1..max_chunk bytes (max_chunk 0: all at once), sealing the batch
// after a read with probability seal_odds, then finishes the stream.
result frame_chunked(framing kind, size_t max_line, std::string_view data, size_t max_chunk,
                     uint32_t seed, double seal_odds = 0.0, bool finish = true) {
    stream s(kind, max_line);
    std::mt19937 rng(seed);
    std::uniform_int_distribution<size_t> chunk(1, max_chunk == 0 ? data.size() + 1 : max_chunk);
    std::bernoulli_distribution seal(seal_odds);
    size_t at = 0;
    while (at < data.size()) {
        const size_t n = max_chunk == 0 ? data.size() : std::min(chunk(rng), data.size() - at);
        s.read(data.substr(at, n));
        at += n;
        if (seal(rng)) {
            s.seal();
        }
    }
    if (finish) {
        s.finish();
    } else {
        s.seal();
    }
    return {s.lines, s.truncated};
}

result frame_split(framing kind, size_t max_line, std::string_view data,
                   const std::vector<size_t>& cuts, bool seal_at_cuts) {
    stream s(kind, max_line);
    size_t at = 0;
    for (size_t cut : cuts) {
        s.read(data.substr(at, cut - at));
        at = cut;
        if (seal_at_cuts) {
            s.seal();
        }
    }
    s.read(data.substr(at));
    s.finish();
    return {s.lines, s.truncated};
}

// Reference newline framing: split on '\n', strip one '\r', cut to max_line; the final
// unterminated piece (if any) is the last event.
result reference_newline(std::string_view data, size_t max_line) {
    result r;
    auto add = [&](std::string_view l) {
        if (!l.empty() && l.back() == '\r') {
            l.remove_suffix(1);
        }
        if (l.size() > max_line) {
            l = l.substr(0, max_line);
            ++r.truncated;
        }
        r.lines.emplace_back(l);
    };
    size_t start = 0;
    for (size_t nl = data.find('\n'); nl != std::string_view::npos; nl = data.find('\n', start)) {
        add(data.substr(start, nl - start));
        start = nl + 1;
    }
    if (start < data.size()) {
        add(data.substr(start));
    }
    return r;
}

std::string octet(std::string_view payload) {
    return std::to_string(payload.size()) + " " + std::string(payload);
}

lines_t read_log_lines(std::string& raw) {
    const std::string path = SLUICE_SOURCE_DIR "/tests/data/real_logs/Linux_2k.log";
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in);
    std::ostringstream ss;
    ss << in.rdbuf();
    raw = ss.str();
    return reference_newline(raw, 1 << 20).lines;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Newline framing

TEST_CASE("newline framing cuts lines and keeps empty ones", "[framing]") {
    stream s(framing::newline, 1024);
    s.read("alpha\nbeta\n\n\ngamma\n");
    CHECK(s.current->event_count() == 5);
    CHECK(s.f.pending_bytes(*s.current) == 0);
    s.finish();
    CHECK(s.lines == lines_t{"alpha", "beta", "", "", "gamma"});
    CHECK(s.truncated == 0);
}

TEST_CASE("newline framing strips one trailing CR", "[framing]") {
    stream s(framing::newline, 1024);
    s.read("a\r\n\r\nb\rc\r\nd\r\r\n\r");
    s.read("\n");
    s.finish();
    CHECK(s.lines == lines_t{"a", "", "b\rc", "d\r", ""});
}

TEST_CASE("newline framing is the same whatever the reads", "[framing]") {
    const std::string data =
        "first line\r\nsecond\n\nfourth after an empty one\r\n\r\n"
        "a somewhat longer line with spaces, tabs\tand: punctuation!\n"
        "x\ny\nz\r\nunterminated tail";
    const result expected = reference_newline(data, 1024);
    REQUIRE(expected.lines.size() == 10);
    REQUIRE(expected.lines.back() == "unterminated tail");

    SECTION("one read") {
        CHECK(frame_chunked(framing::newline, 1024, data, 0, 1).lines == expected.lines);
    }
    SECTION("byte by byte") {
        CHECK(frame_chunked(framing::newline, 1024, data, 1, 1).lines == expected.lines);
        CHECK(frame_chunked(framing::newline, 1024, data, 1, 1, 1.0).lines == expected.lines);
    }
    SECTION("two reads, split at every position, with and without a seal between") {
        for (size_t cut = 0; cut <= data.size(); ++cut) {
            INFO("cut at " << cut);
            CHECK(frame_split(framing::newline, 1024, data, {cut}, false).lines == expected.lines);
            CHECK(frame_split(framing::newline, 1024, data, {cut}, true).lines == expected.lines);
        }
    }
    SECTION("random chunk sizes and random seals") {
        for (uint32_t seed = 1; seed <= 200; ++seed) {
            INFO("seed " << seed);
            const size_t max_chunk = 1 + seed % 17;
            const double seal = (seed % 4) * 0.25;
            CHECK(frame_chunked(framing::newline, 1024, data, max_chunk, seed, seal).lines ==
                  expected.lines);
        }
    }
}

TEST_CASE("newline framing truncates an over-long complete line", "[framing]") {
    stream s(framing::newline, 8);
    s.read("0123456789abc\nok\n12345678\n123456789\r\n");
    s.finish();
    CHECK(s.lines == lines_t{"01234567", "ok", "12345678", "12345678"});
    CHECK(s.truncated == 2);
    CHECK(s.f.take_truncated() == 0);  // taking resets the count
}

TEST_CASE("newline framing cuts an over-long unterminated line once and skips its rest",
          "[framing]") {
    stream s(framing::newline, 8);
    s.read("ok\n0123456");
    CHECK(s.current->event_count() == 1);
    CHECK(s.f.pending_bytes(*s.current) == 7);
    s.read("789");  // 10 bytes without a newline: more than max, cut now
    CHECK(s.current->event_count() == 2);
    CHECK(s.current->line(1) == "01234567");
    CHECK(s.f.pending_bytes(*s.current) == 0);
    CHECK(s.f.take_truncated() == 1);

    // The rest of the line never accumulates, across reads and a seal.
    s.read("more of the same line");
    CHECK(s.current->event_count() == 2);
    CHECK(s.f.pending_bytes(*s.current) == 0);
    s.seal();
    CHECK(s.current->buffer().size() == 0);
    s.read(std::string(100, 'z'));
    CHECK(s.current->event_count() == 0);
    CHECK(s.f.pending_bytes(*s.current) == 0);

    // Its newline ends the skipping; the next line is whole.
    s.read("end of the long line\nnext\n");
    s.finish();
    CHECK(s.lines == lines_t{"ok", "01234567", "next"});
    CHECK(s.truncated == 0);  // already taken above
    CHECK(s.f.take_truncated() == 0);
}

TEST_CASE("newline framing truncation does not depend on the reads", "[framing]") {
    // Lines around the limit, with and without CR, in every arrangement of reads: the same
    // events and the same truncation count as one read.
    constexpr size_t max = 8;
    std::string data;
    for (size_t len : {0, 1, 7, 8, 9, 10, 30, 8, 7}) {
        data += std::string(len, static_cast<char>('a' + len % 26)) + "\n";
        data += std::string(len, static_cast<char>('A' + len % 26)) + "\r\n";
    }
    data += "12345678\r";  // unterminated, fits once its CR is stripped
    const result expected = reference_newline(data, max);
    REQUIRE(expected.truncated == 6);

    CHECK(frame_chunked(framing::newline, max, data, 0, 1).lines == expected.lines);
    CHECK(frame_chunked(framing::newline, max, data, 0, 1).truncated == expected.truncated);
    for (uint32_t seed = 1; seed <= 300; ++seed) {
        INFO("seed " << seed);
        const result r =
            frame_chunked(framing::newline, max, data, 1 + seed % 12, seed, (seed % 3) * 0.3);
        CHECK(r.lines == expected.lines);
        CHECK(r.truncated == expected.truncated);
    }
    for (size_t cut = 0; cut <= data.size(); ++cut) {
        INFO("cut at " << cut);
        const result r = frame_split(framing::newline, max, data, {cut}, cut % 2 == 0);
        CHECK(r.lines == expected.lines);
        CHECK(r.truncated == expected.truncated);
    }
}

TEST_CASE("a line of exactly max_line_bytes and its CR is not truncated", "[framing]") {
    stream s(framing::newline, 8);
    s.read("12345678\r");  // the CR may be the line's end: wait for the next byte
    CHECK(s.current->event_count() == 0);
    s.read("\n");
    s.finish();
    CHECK(s.lines == lines_t{"12345678"});
    CHECK(s.truncated == 0);
}

TEST_CASE("finish turns the partial line into a last event", "[framing]") {
    SECTION("a partial line") {
        stream s(framing::newline, 64);
        s.read("a\nbc");
        CHECK(s.f.pending_bytes(*s.current) == 2);
        s.finish();
        CHECK(s.lines == lines_t{"a", "bc"});
    }
    SECTION("its CR is stripped") {
        stream s(framing::newline, 64);
        s.read("a\nbc\r");
        s.finish();
        CHECK(s.lines == lines_t{"a", "bc"});
    }
    SECTION("nothing pending: no extra event") {
        stream s(framing::newline, 64);
        s.read("a\n");
        s.finish();
        CHECK(s.lines == lines_t{"a"});
    }
    SECTION("an empty stream: no event") {
        stream s(framing::newline, 64);
        s.finish();
        CHECK(s.lines.empty());
    }
    SECTION("a partial line at the limit is whole") {
        stream s(framing::newline, 4);
        s.read("abcd");
        s.finish();
        CHECK(s.lines == lines_t{"abcd"});
        CHECK(s.truncated == 0);
    }
    SECTION("while skipping an over-long line: nothing more") {
        stream s(framing::newline, 4);
        s.read("abcdefgh");
        s.read("ijk");
        s.finish();
        CHECK(s.lines == lines_t{"abcd"});
        CHECK(s.truncated == 1);
    }
    SECTION("after a seal: the partial line carried over") {
        stream s(framing::newline, 64);
        s.read("a\npart");
        s.seal();
        s.read("ial");
        s.finish();
        CHECK(s.lines == lines_t{"a", "partial"});
        CHECK(s.sealed_batches == 2);
    }
}

TEST_CASE("carry_over moves the partial line and seals the old batch", "[framing]") {
    framer f(framing::newline, 1024);
    batch b(0, 4096);
    const std::string_view first = "abc\r\nde\n\nfgh";
    b.buffer().append(first.data(), first.size());
    f.consume(b);
    REQUIRE(b.event_count() == 3);
    CHECK(f.pending_bytes(b) == 3);

    batch next(0);
    f.carry_over(b, next);
    CHECK(b.text() == "abc\nde\n\n");
    CHECK(b.buffer().size() == 8);
    CHECK(b.event_count() == 3);
    CHECK(std::string_view(next.buffer().data(), next.buffer().size()) == "fgh");
    CHECK(next.event_count() == 0);
    CHECK(f.pending_bytes(next) == 3);

    // Framing goes on in the new batch, whose offsets start at 0.
    const std::string_view second = "ij\nk";
    next.buffer().append(second.data(), second.size());
    f.consume(next);
    REQUIRE(next.event_count() == 1);
    CHECK(next.line(0) == "fghij");
    CHECK(next.events()[0].offset == 0);
    CHECK(f.pending_bytes(next) == 1);

    // Nothing pending: the new batch gets an empty buffer.
    next.buffer().append("\n", 1);
    f.consume(next);
    batch third(0);
    f.carry_over(next, third);
    CHECK(next.text() == "fghij\nk\n");
    CHECK(third.buffer().size() == 0);
}

TEST_CASE("newline framing of a real log, in random reads, gives every line in order",
          "[framing]") {
    std::string raw;
    const lines_t expected = read_log_lines(raw);
    REQUIRE(expected.size() >= 1999);
    for (uint32_t seed : {1u, 2u, 3u, 42u}) {
        INFO("seed " << seed);
        const result r = frame_chunked(framing::newline, 64 * 1024, raw, 1 + seed * 700, seed,
                                       seed == 42 ? 0.0 : 0.3);
        REQUIRE(r.lines.size() == expected.size());
        CHECK(r.lines == expected);
        CHECK(r.truncated == 0);
    }
    // Small reads too, as a slow sender would make.
    const result r = frame_chunked(framing::newline, 64 * 1024, raw, 7, 99, 0.05);
    CHECK(r.lines == expected);
}

// ---------------------------------------------------------------------------------------------
// Octet counting

TEST_CASE("octet counting reads LEN SP MSG frames", "[framing]") {
    stream s(framing::octet_counting, 1024);
    s.read("5 hello6 world!");
    CHECK(s.current->event_count() == 2);
    CHECK(s.f.pending_bytes(*s.current) == 0);
    CHECK(s.current->text() == "hello\nworld!\n");
    s.finish();
    CHECK(s.lines == lines_t{"hello", "world!"});
}

TEST_CASE("octet frames keep spaces, CRs and LFs inside the message", "[framing]") {
    stream s(framing::octet_counting, 1024);
    s.read("11 hello\nworld3 a\r 3 12 ");
    s.finish();
    CHECK(s.lines == lines_t{"hello\nworld", "a\r ", "12 "});
}

TEST_CASE("octet framing is the same whatever the reads", "[framing]") {
    const std::string data = octet("hello") + octet("world!") + octet("12 starts with digits") +
                             octet(std::string(123, 'q')) + octet(" leading space") + octet("x") +
                             "<13>a plain line\n" + octet("after the line");
    const lines_t expected = {
        "hello",          "world!", "12 starts with digits", std::string(123, 'q'),
        " leading space", "x",      "<13>a plain line",      "after the line"};
    SECTION("one read") {
        CHECK(frame_chunked(framing::octet_counting, 1024, data, 0, 1).lines == expected);
    }
    SECTION("byte by byte") {
        CHECK(frame_chunked(framing::octet_counting, 1024, data, 1, 1).lines == expected);
        CHECK(frame_chunked(framing::octet_counting, 1024, data, 1, 1, 1.0).lines == expected);
    }
    SECTION("two reads, split at every position, including inside the length") {
        for (size_t cut = 0; cut <= data.size(); ++cut) {
            INFO("cut at " << cut);
            CHECK(frame_split(framing::octet_counting, 1024, data, {cut}, false).lines == expected);
            CHECK(frame_split(framing::octet_counting, 1024, data, {cut}, true).lines == expected);
        }
    }
    SECTION("three reads, every pair of positions in the first frames") {
        const std::string head = "5 hello6 world!11 from digits";
        const lines_t head_lines = {"hello", "world!", "from digits"};
        for (size_t a = 0; a <= head.size(); ++a) {
            for (size_t b = a; b <= head.size(); ++b) {
                INFO("cuts at " << a << ", " << b);
                CHECK(frame_split(framing::octet_counting, 1024, head, {a, b}, (a + b) % 2 == 0)
                          .lines == head_lines);
            }
        }
    }
    SECTION("random chunk sizes and random seals") {
        for (uint32_t seed = 1; seed <= 200; ++seed) {
            INFO("seed " << seed);
            CHECK(frame_chunked(framing::octet_counting, 1024, data, 1 + seed % 23, seed,
                                (seed % 4) * 0.25)
                      .lines == expected);
        }
    }
}

TEST_CASE("octet counting reads a frame not starting with a digit as a line", "[framing]") {
    stream s(framing::octet_counting, 1024);
    s.read("<34>Oct 11 22:14:15 mymachine su: 'su root' failed\r\n");
    s.read("123abc\n");           // digits, but no "LEN SP"
    s.read("05 leading zero\n");  // a length never starts with 0
    s.read("12345678901 ten digits and more\n");
    s.read("4 okay");
    s.finish();
    CHECK(s.lines == lines_t{"<34>Oct 11 22:14:15 mymachine su: 'su root' failed", "123abc",
                             "05 leading zero", "12345678901 ten digits and more", "okay"});
}

TEST_CASE("octet counting mixes octet and newline frames, ignoring LFs between frames",
          "[framing]") {
    const std::string data = "5 hello\n<13>plain one\n6 world!\n\n\r\nplain two\n3 abc";
    const lines_t expected = {"hello", "<13>plain one", "world!", "plain two", "abc"};
    CHECK(frame_chunked(framing::octet_counting, 1024, data, 0, 1).lines == expected);
    for (uint32_t seed = 1; seed <= 100; ++seed) {
        INFO("seed " << seed);
        CHECK(frame_chunked(framing::octet_counting, 1024, data, 1 + seed % 7, seed, 0.3).lines ==
              expected);
    }
}

TEST_CASE("octet counting truncates an over-long frame and skips its rest across reads",
          "[framing]") {
    const std::string data = "10 0123456789" + octet("abc") + "7 ABCDEFG" + octet("defg");
    const lines_t expected = {"0123", "abc", "ABCD", "defg"};
    const result whole = frame_chunked(framing::octet_counting, 4, data, 0, 1);
    CHECK(whole.lines == expected);
    CHECK(whole.truncated == 2);
    for (size_t cut = 0; cut <= data.size(); ++cut) {
        INFO("cut at " << cut);
        const result r = frame_split(framing::octet_counting, 4, data, {cut}, cut % 2 == 1);
        CHECK(r.lines == expected);
        CHECK(r.truncated == 2);
    }
    const result bytes = frame_chunked(framing::octet_counting, 4, data, 1, 1, 0.5);
    CHECK(bytes.lines == expected);
    CHECK(bytes.truncated == 2);

    // The skipped rest of a frame never accumulates in the buffer.
    stream s(framing::octet_counting, 4);
    s.read("1000 abcd");
    CHECK(s.current->event_count() == 1);
    CHECK(s.f.pending_bytes(*s.current) == 0);
    for (int i = 0; i < 99; ++i) {
        s.read("0123456789");
        REQUIRE(s.f.pending_bytes(*s.current) == 0);
    }
    s.seal();
    s.read("xyzwuv");  // the frame's last 6 bytes
    CHECK(s.current->event_count() == 0);
    s.read("2 ok");
    s.finish();
    CHECK(s.lines == lines_t{"abcd", "ok"});
    CHECK(s.truncated == 1);
}

TEST_CASE("octet counting finish yields a cut-short frame without its length", "[framing]") {
    SECTION("data begun") {
        stream s(framing::octet_counting, 1024);
        s.read("5 hello11 hel");
        s.read("lo");
        s.finish();
        CHECK(s.lines == lines_t{"hello", "hello"});
    }
    SECTION("across a seal") {
        stream s(framing::octet_counting, 1024);
        s.read("20 part");
        s.seal();
        s.read("ial");
        s.finish();
        CHECK(s.lines == lines_t{"partial"});
    }
    SECTION("digits without their space") {
        stream s(framing::octet_counting, 1024);
        s.read("3 abc");
        s.read("12");
        s.finish();
        // "12" without its space is not a frame header: it is read as a line.
        CHECK(s.lines == lines_t{"abc", "12"});
    }
    SECTION("while skipping an over-long frame: nothing more") {
        stream s(framing::octet_counting, 4);
        s.read("10 01234567");
        s.finish();
        CHECK(s.lines == lines_t{"0123"});
        CHECK(s.truncated == 1);
    }
    SECTION("an unterminated plain line") {
        stream s(framing::octet_counting, 1024);
        s.read("<13>no newline");
        s.finish();
        CHECK(s.lines == lines_t{"<13>no newline"});
    }
}

TEST_CASE("octet counting of a real log, in random reads, gives every line in order", "[framing]") {
    std::string raw;
    const lines_t lines = read_log_lines(raw);
    std::string data;
    lines_t expected;
    for (const auto& l : lines) {
        if (!l.empty()) {
            data += octet(l);
            expected.push_back(l);
        }
    }
    REQUIRE(expected.size() >= 1999);
    for (uint32_t seed : {5u, 6u, 7u}) {
        INFO("seed " << seed);
        const result r =
            frame_chunked(framing::octet_counting, 64 * 1024, data, 1 + seed * 300, seed, 0.3);
        REQUIRE(r.lines.size() == expected.size());
        CHECK(r.lines == expected);
    }
}

TEST_CASE("parse_framing knows both kinds", "[framing]") {
    CHECK(sluice::parse_framing("newline") == framing::newline);
    CHECK(sluice::parse_framing("octet_counting") == framing::octet_counting);
    CHECK_FALSE(sluice::parse_framing("octet").has_value());
    CHECK_FALSE(sluice::parse_framing("").has_value());
}

TEST_CASE("record_ends gives each line's end in the stream, across reads and a flush",
          "[framing]") {
    using sluice::batch;
    sluice::framer f(sluice::framing::newline, 8);
    std::vector<uint64_t> ends;
    f.record_ends(&ends);
    batch b(0, 256);
    auto feed = [&](std::string_view bytes) {
        b.buffer().append(bytes.data(), bytes.size());
        f.consume(b);
    };
    // "ab\r\n" is 4 stream bytes for a 2-byte line; the 12-byte line is cut to 8, its head
    // emitted before its newline comes and its rest ("89AB\n") skipped; "tail" waits for a
    // newline, then is flushed.
    feed("ab\r\nc\n0123456789");
    CHECK(ends == std::vector<uint64_t>{4, 6, 16});
    feed("AB\nxy\n");
    CHECK(ends == std::vector<uint64_t>{4, 6, 16, 22});
    feed("tail");
    CHECK(ends.size() == 4);
    f.finish(b);
    CHECK(ends == std::vector<uint64_t>{4, 6, 16, 22, 26});
    feed("more\n");
    CHECK(ends.back() == 31);
    CHECK(b.event_count() == 6);
    CHECK(std::string(b.line(2)) == "01234567");
    CHECK(std::string(b.line(4)) == "tail");
    CHECK(std::string(b.line(5)) == "more");
}

// add_message with split = true copies a frame once and cuts its lines in place; the events
// must be exactly what a line-by-line copy gave, with the sealed-batch layout ("line\n" back to
// back, nothing else in the buffer).
TEST_CASE("add_message split: one event per line, in place, after what the batch holds",
          "[framing]") {
    batch b(0, 16);  // small: the frames below make it grow
    CHECK(sluice::add_message(b, "first whole\n", false, 64) == 0);
    // '\r' stripped once, empty and "\r"-only lines skipped, a long line cut, a last line
    // without '\n' kept.
    CHECK(sluice::add_message(b, "a\r\nbb\n\n\r\n0123456789abc\nc\r\r\nlast", true, 10) == 1);
    CHECK(sluice::add_message(b, "", true, 10) == 0);
    CHECK(sluice::add_message(b, "\n\n", true, 10) == 0);
    CHECK(sluice::add_message(b, "x\ny\n", true, 10) == 0);
    const lines_t want{"first whole", "a", "bb", "0123456789", "c\r", "last", "x", "y"};
    REQUIRE(b.event_count() == want.size());
    std::string text;
    for (size_t i = 0; i < want.size(); ++i) {
        CHECK(std::string(b.line(i)) == want[i]);
        text += want[i] + "\n";
    }
    CHECK(std::string(b.text()) == text);
}

TEST_CASE("add_message split: a frame of only unchanged lines lands as it was sent",
          "[framing]") {
    std::string frame;
    lines_t want;
    for (int i = 0; i < 500; ++i) {
        want.push_back("line " + std::to_string(i) + std::string(static_cast<size_t>(i % 90), 'x'));
        frame += want.back() + "\n";
    }
    batch b(0);
    CHECK(sluice::add_message(b, frame, true, 65536) == 0);
    REQUIRE(b.event_count() == want.size());
    CHECK(std::string(b.text()) == frame);
    for (size_t i = 0; i < want.size(); ++i) {
        CHECK(std::string(b.line(i)) == want[i]);
    }
}
