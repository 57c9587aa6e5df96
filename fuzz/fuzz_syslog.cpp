// libFuzzer target for decode_syslog: any bytes, never a crash; a decoded line's views lie in
// the line, its numbers are in range, and its structured data is a valid JSON object.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <simdjson.h>

#include "ingest/codecs/codec.h"

namespace {

void check(bool ok) {
    if (!ok) {
        std::abort();
    }
}

void check_view(std::string_view v, std::string_view line) {
    if (v.data() != nullptr) {
        check(v.data() >= line.data() && v.data() + v.size() <= line.data() + line.size());
    }
}

void decode_and_check(std::string_view line, int64_t now_unix_ns) {
    static simdjson::dom::parser parser;
    sluice::decoded_event ev;
    std::string fields_out = "x";  // what earlier lines of the batch appended
    if (!sluice::decode_syslog(line, ev, fields_out, now_unix_ns)) {
        check(fields_out == "x");  // a rejected line leaves no half-written JSON
        return;
    }
    check(ev.severity >= -1 && ev.severity <= 7);
    check(ev.facility >= -1 && ev.facility <= 23);
    check((ev.severity == -1) == (ev.facility == -1));
    for (std::string_view v : {ev.host, ev.app, ev.procid, ev.msgid, ev.message}) {
        check_view(v, line);
    }
    check(ev.message.data() != nullptr);
    switch (ev.fields) {
        case sluice::decoded_event::fields_where::none:
            check(fields_out == "x");
            break;
        case sluice::decoded_event::fields_where::line:
            check(false);  // syslog never stores the line as fields
            break;
        case sluice::decoded_event::fields_where::appended: {
            check(ev.fields_offset == 1 &&
                  ev.fields_offset + ev.fields_length == fields_out.size());
            const std::string json = fields_out.substr(ev.fields_offset, ev.fields_length);
            simdjson::dom::element root;
            check(parser.parse(json).get(root) == simdjson::SUCCESS);
            check(root.is_object());
            break;
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // A copy of exactly `size` bytes, so ASan sees any read past the line.
    const std::string line(reinterpret_cast<const char*>(data), size);
    // 2024-06-01 and a New Year's Eve (the RFC 3164 year rule), then a clock at the far end of
    // the int64 range, which must not overflow.
    for (int64_t now : {int64_t{1'717'200'000'000'000'000}, int64_t{1'735'689'599'000'000'000},
                        int64_t{9'223'372'036'854'775'807}, int64_t{-9'223'372'036'854'775'807}}) {
        decode_and_check(line, now);
    }
    return 0;
}
