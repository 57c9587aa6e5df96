// Formats events as one JSON object per line (the file sink's and the ZeroMQ sink's `json`
// format): received_at (RFC 3339 ns), source, host, message and the decoded columns.
// Pure function; any thread.
#pragma once

#include <string>

#include "queue/event.h"

namespace sluice {

// Appends event `i` of `b` as one JSON object, without a trailing newline.
void append_event_json(std::string& out, const batch& b, size_t i, const std::string& source);

}  // namespace sluice
