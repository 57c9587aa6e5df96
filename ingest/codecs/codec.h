// Codecs: decode one framed line into the columns of an event (SPEC.md, "SQLite sink").
// Pure functions over one line; a parser object per thread (not thread-safe to share).
// A line that does not decode is kept as plain text by the caller and counted.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

namespace sluice {

enum class codec_kind { text, json, syslog };

std::optional<codec_kind> parse_codec(std::string_view s);

// What a codec found in a line. Views point into the decoded line; a view whose data() is
// nullptr is NULL (absent), an empty view with a non-null data() is an empty string.
struct decoded_event {
    // Text a codec wrote to the caller's string (`fields_out`, `extra`): its place there.
    struct appended_text {
        size_t offset = 0;
        size_t length = 0;
    };

    std::optional<int64_t> ts_ns;  // the event's own time, unix ns
    int severity = -1;             // 0..7, -1 = NULL
    int facility = -1;             // 0..23, -1 = NULL
    std::string_view host;         // syslog HOSTNAME (nil '-' -> NULL); json host, hostname
    std::string_view app;          // syslog APP-NAME / RFC 3164 TAG; json app, service
    std::string_view procid;       // syslog PROCID / RFC 3164 [pid]
    std::string_view msgid;        // syslog MSGID
    std::string_view message;      // syslog MSG (BOM, one trailing LF stripped); json message
    // A json string with escapes has no view into the line: it is unescaped into the caller's
    // string instead, and its view above stays NULL.
    std::optional<appended_text> host_appended;
    std::optional<appended_text> app_appended;
    std::optional<appended_text> message_appended;
    // Where `fields` is: NULL, the line itself (JSON object), or text appended to the
    // caller's string (syslog structured data as JSON, the other keys of a json line).
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

// A JSON object per line (simdjson), read by its top-level keys (the first that holds a
// readable value wins):
// - message: the string of "message", "msg" or "log"; `fields` is then the object less that
//   one member (NULL if it was the only one). With none of them, message and fields are both
//   the whole line.
// - ts: "ts", "timestamp", "time" or "@timestamp" (number: seconds, ms, us or ns by magnitude;
//   string: RFC 3339).
// - severity: "level" or "severity": 0..7, or a syslog name (any case; also warn, fatal,
//   critical, trace).
// - host: "host" or "hostname"; app: "app" or "service" (non-empty strings).
// Those keys stay in `fields`. Text that is not a view into the line (the object less its
// message, unescaped strings) is appended to `extra`. Returns false, `extra` untouched, when
// the line is not a JSON object.
class json_decoder {
  public:
    bool decode(std::string_view line, decoded_event& out, std::string& extra);

  private:
    // One top-level member in the line: the key's opening quote, the value's first byte and
    // the byte past the value.
    struct member_span {
        size_t key_begin;
        size_t value_begin;
        size_t value_end;
    };

    simdjson::dom::parser parser_;
    std::vector<member_span> members_;  // reused from line to line
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
