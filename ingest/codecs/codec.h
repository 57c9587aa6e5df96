// Codecs: decode one framed line into the columns of an event (SPEC.md, "SQLite sink").
// Pure functions over one line; a parser object per thread (not thread-safe to share).
// A line that does not decode is kept as plain text by the caller and counted.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <simdjson.h>

namespace sluice {

enum class codec_kind { text, json, syslog };

std::optional<codec_kind> parse_codec(std::string_view s);

// What a codec found in a line. Views point into the decoded line; a view whose data() is
// nullptr is NULL (absent), an empty view with a non-null data() is an empty string.
struct decoded_event {
    std::optional<int64_t> ts_ns;  // the event's own time, unix ns
    int severity = -1;             // 0..7, -1 = NULL
    int facility = -1;             // 0..23, -1 = NULL
    std::string_view host;         // syslog HOSTNAME (nil '-' -> NULL)
    std::string_view app;          // syslog APP-NAME / RFC 3164 TAG
    std::string_view procid;       // syslog PROCID / RFC 3164 [pid]
    std::string_view msgid;        // syslog MSGID
    std::string_view message;      // syslog MSG (BOM and one trailing LF stripped); json: line
    // Where `fields` is: NULL, the line itself (JSON object), or text appended to the
    // caller's `fields_out` string (syslog structured data as JSON).
    enum class fields_where { none, line, appended } fields = fields_where::none;
    size_t fields_offset = 0;  // appended: offset in fields_out
    size_t fields_length = 0;  // appended: length in fields_out

    void reset() { *this = decoded_event{}; }
};

// RFC 5424 and RFC 3164 (with or without PID; PRI optional for 3164 lines read from files).
// Structured data is appended to `fields_out` as {"sd-id": {"param": "value"}}.
// Returns false (and leaves `out` unspecified) when the line is neither.
bool decode_syslog(std::string_view line, decoded_event& out, std::string& fields_out,
                   int64_t now_unix_ns);

// A JSON object per line (simdjson). `message` is the whole line; `fields` is the line
// itself; ts from a top-level "ts", "timestamp" or "time" (number: seconds, ms, us or ns by
// magnitude; string: RFC 3339). Returns false when the line is not a JSON object.
class json_decoder {
public:
    bool decode(std::string_view line, decoded_event& out);

private:
    simdjson::dom::parser parser_;
};

// Parses an RFC 3339 timestamp ("2003-10-11T22:14:15.003Z", "...+02:00") to unix ns.
// Accepts 'T', 't' or ' ' between date and time, 'Z' or 'z', a fraction of any length (digits
// past nanoseconds are dropped); rejects out-of-range fields and times outside int64 ns.
std::optional<int64_t> parse_rfc3339_ns(std::string_view s);

// Unix ns of a UTC civil time; nullopt when a field is out of range (second may be 60, a leap
// second, which lands on the next minute) or the result does not fit int64 ns. Shared by the
// RFC 3339 parser and the RFC 3164 timestamp, which has no year or zone of its own.
std::optional<int64_t> civil_to_unix_ns(int year, int month, int day, int hour, int minute,
                                        int second, int64_t nanos);

}  // namespace sluice
