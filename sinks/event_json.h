// Formats events as one JSON object per line (the file sink's and the ZeroMQ sink's `json`
// format): received_at (RFC 3339 ns), source, host, message and the decoded columns.
// Pure function; any thread.
#pragma once

#include <string>

#include "queue/event.h"

namespace sluice {

// Appends event `i` of `b` as one JSON object, without a trailing newline. `with_line` adds the
// event's line as read ("line") when it is not its message, so that a reader (the nats source)
// can restore the event whole: a syslog line's message is only its MSG part.
void append_event_json(std::string& out, const batch& b, size_t i, const std::string& source,
                       bool with_line = false);

}  // namespace sluice
