// event_restore: reads back an event that a sluice sink wrote in its json format (one object:
// received_at, source, host, file, message, line and the decoded columns; sinks/event_json),
// so that an aggregator's nats source stores what the agent would have stored. Pure parsing
// (simdjson DOM); one restorer per thread. Views stay valid until the next parse().
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <simdjson.h>

#include "queue/event.h"

namespace sluice {

struct restored_event {
    std::string_view source;
    int64_t received_ns = 0;
    std::string_view host;     // data() == nullptr: absent or null
    std::string_view file;     // empty: none
    std::string_view message;
    std::string_view line;     // data() == nullptr: the line is the message
    std::optional<int64_t> ts_ns;
    int severity = -1;
    int facility = -1;
    std::string_view app;
    std::string_view procid;
    std::string_view msgid;
    std::string_view topic;
    std::string fields;        // the fields object, minified; empty: none
};

class event_restorer {
public:
    // True when `text` is one JSON object with at least a string received_at (RFC 3339), a
    // string source and a string message, of the types the sinks write for the other members;
    // false for anything else (the caller then decodes it with the source's codec).
    bool parse(std::string_view text, restored_event& out);

private:
    simdjson::dom::parser parser_;
};

// Appends `e` to `b` as one event: its line (the message when it had no line of its own) and
// its columns, the text of which goes to the batch's extra text. `b` must hold meta for all of
// its events (restored batches do).
void append_restored(batch& b, const restored_event& e);

}  // namespace sluice
