// libFuzzer target for json_decoder and parse_rfc3339_ns: any bytes, never a crash; a line
// decodes exactly when simdjson reads it as one object; an RFC 3339 time that parses formats
// back to the same nanosecond.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <simdjson.h>

#include "common/json_writer.h"
#include "ingest/codecs/codec.h"

namespace {

void check(bool ok) {
    if (!ok) {
        std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static sluice::json_decoder decoder;  // reused, as a source reuses it from line to line
    static simdjson::dom::parser reference;
    const std::string line(reinterpret_cast<const char*>(data), size);

    sluice::decoded_event ev;
    const bool ok = decoder.decode(line, ev);
    // The reference parses from a padded copy, without the codec's shortcuts.
    const simdjson::padded_string padded(line);
    simdjson::dom::element root;
    const bool is_object =
        reference.parse(padded).get(root) == simdjson::SUCCESS && root.is_object();
    check(ok == is_object);
    if (ok) {
        check(ev.message.data() == line.data() && ev.message.size() == line.size());
        check(ev.fields == sluice::decoded_event::fields_where::line);
        check(ev.host.data() == nullptr && ev.severity == -1 && ev.facility == -1);
    }

    if (const auto ns = sluice::parse_rfc3339_ns(line)) {
        std::string formatted;
        sluice::append_rfc3339_ns(formatted, *ns);
        check(sluice::parse_rfc3339_ns(formatted) == ns);
    }
    return 0;
}
