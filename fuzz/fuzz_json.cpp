// libFuzzer target for json_decoder and parse_rfc3339_ns: any bytes, never a crash; a line
// decodes exactly when simdjson reads it as one object; its message, host and app are the
// strings a reference reading of the object picks, and its fields are the object less the
// message member (checked member by member); an RFC 3339 time that parses formats back to the
// same nanosecond. The same bytes go to event_restore (the nats source's reading of sluice's
// event JSON): an event it restores writes back (append_event_json) to JSON that restores to
// the same event.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include <simdjson.h>

#include "common/json_writer.h"
#include "ingest/codecs/codec.h"
#include "ingest/codecs/event_restore.h"
#include "sinks/event_json.h"

namespace {

void check(bool ok) {
    if (!ok) {
        std::abort();
    }
}

// The first member, in key order then line order, of `keys` that holds a string (non-empty
// unless `empty_ok`): its index among the object's members and its string.
struct pick {
    size_t index = SIZE_MAX;
    std::string_view text;
};

pick first_string(simdjson::dom::object object, std::initializer_list<std::string_view> keys,
                  bool empty_ok) {
    for (const std::string_view key : keys) {
        size_t i = 0;
        for (const auto field : object) {
            std::string_view s;
            if (field.key == key && field.value.get_string().get(s) == simdjson::SUCCESS &&
                (empty_ok || !s.empty())) {
                return {i, s};
            }
            ++i;
        }
    }
    return {};
}

// A decoded column's text: a view that lies in the line, or text appended to `extra`.
std::optional<std::string_view> column_text(
    std::string_view line, std::string_view view,
    const std::optional<sluice::decoded_event::appended_text>& appended,
    const std::string& extra) {
    if (appended) {
        check(view.data() == nullptr && appended->offset + appended->length <= extra.size());
        return std::string_view(extra).substr(appended->offset, appended->length);
    }
    if (view.data() == nullptr) {
        return std::nullopt;
    }
    check(view.data() >= line.data() && view.data() + view.size() <= line.data() + line.size());
    return view;
}

void check_column(std::string_view line, std::string_view view,
                  const std::optional<sluice::decoded_event::appended_text>& appended,
                  const std::string& extra, const pick& expected) {
    const auto text = column_text(line, view, appended, extra);
    check(expected.index == SIZE_MAX ? !text : text && *text == expected.text);
}

// `fields` is `object` without its member `skip`, member by member, in order.
void check_fields(std::string_view fields, simdjson::dom::object object, size_t skip) {
    static simdjson::dom::parser parser;
    simdjson::dom::object got;
    check(parser.parse(simdjson::padded_string(fields)).get_object().get(got) ==
          simdjson::SUCCESS);
    auto it = got.begin();
    size_t i = 0;
    for (const auto field : object) {
        if (i++ == skip) {
            continue;
        }
        check(it != got.end() && it.key() == field.key &&
              simdjson::to_string(it.value()) == simdjson::to_string(field.value));
        ++it;
    }
    check(it == got.end());
}

bool same_text(std::string_view a, std::string_view b) {
    return (a.data() == nullptr) == (b.data() == nullptr) && a == b;
}

// A restored event, written as a sink writes it and restored again, is the same event.
void check_restore_round_trip(const std::string& line) {
    static sluice::event_restorer first;
    static sluice::event_restorer second;
    sluice::restored_event a;
    if (!first.parse(line, a)) {
        return;
    }
    sluice::batch b(0);
    append_restored(b, a);
    b.received_ns = a.received_ns;
    b.file.assign(a.file);
    std::string json;
    append_event_json(json, b, 0, std::string(a.source), true);
    sluice::restored_event c;
    check(second.parse(json, c));
    check(c.source == a.source && c.received_ns == a.received_ns && c.file == a.file);
    check(same_text(c.host, a.host) && c.message == a.message && c.ts_ns == a.ts_ns);
    // A line equal to its message is not written twice.
    check(c.line.data() == nullptr ? a.line.data() == nullptr || a.line == a.message
                                   : c.line == a.line);
    check(c.severity == a.severity && c.facility == a.facility);
    check(same_text(c.app, a.app) && same_text(c.procid, a.procid) &&
          same_text(c.msgid, a.msgid) && same_text(c.topic, a.topic) && c.fields == a.fields);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static sluice::json_decoder decoder;  // reused, as a source reuses it from line to line
    static simdjson::dom::parser reference;
    const std::string line(reinterpret_cast<const char*>(data), size);

    sluice::decoded_event ev;
    std::string extra = "before";  // a batch's extra text holds other events' text already
    const bool ok = decoder.decode(line, ev, extra);
    // The reference parses from a padded copy, without the codec's shortcuts.
    const simdjson::padded_string padded(line);
    simdjson::dom::element root;
    const bool is_object =
        reference.parse(padded).get(root) == simdjson::SUCCESS && root.is_object();
    check(ok == is_object);
    if (!ok) {
        check(extra == "before");
    } else {
        const simdjson::dom::object object = root.get_object().value_unsafe();
        const pick message = first_string(object, {"message", "msg", "log"}, true);
        check_column(line, ev.host, ev.host_appended, extra,
                     first_string(object, {"host", "hostname"}, false));
        check_column(line, ev.app, ev.app_appended, extra,
                     first_string(object, {"app", "service"}, false));
        if (message.index == SIZE_MAX) {
            check(ev.message.data() == line.data() && ev.message.size() == line.size());
            check(ev.fields == sluice::decoded_event::fields_where::line);
        } else {
            check_column(line, ev.message, ev.message_appended, extra, message);
            if (object.size() == 1) {
                check(ev.fields == sluice::decoded_event::fields_where::none);
            } else {
                check(ev.fields == sluice::decoded_event::fields_where::appended &&
                      ev.fields_offset + ev.fields_length <= extra.size());
                check_fields(std::string_view(extra).substr(ev.fields_offset, ev.fields_length),
                             object, message.index);
            }
        }
        check(ev.severity >= -1 && ev.severity <= 7);
        check(ev.procid.data() == nullptr && ev.msgid.data() == nullptr && ev.facility == -1);
    }

    check_restore_round_trip(line);

    if (const auto ns = sluice::parse_rfc3339_ns(line)) {
        std::string formatted;
        sluice::append_rfc3339_ns(formatted, *ns);
        check(sluice::parse_rfc3339_ns(formatted) == ns);
    }
    return 0;
}
