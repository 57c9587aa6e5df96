// Small helpers that write JSON text (escaped strings, RFC 3339 times). Writing only: JSON is
// parsed with simdjson. Pure functions; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sluice {

// Appends `s` as a quoted JSON string. Control characters are escaped; valid UTF-8 passes
// through unchanged and each byte of an invalid sequence becomes U+FFFD, so the output is
// always valid JSON.
void append_json_string(std::string& out, std::string_view s);

// Appends unix nanoseconds as RFC 3339 UTC with nanoseconds: 2026-11-26T07:13:19.123456789Z.
void append_rfc3339_ns(std::string& out, int64_t unix_ns);

}  // namespace sluice
