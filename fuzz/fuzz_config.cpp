// libFuzzer target for parse_config: any bytes, as the text of a config file, either parse
// into a config or throw sluice::config_error, the one exception app/config.h documents for
// bad content; any other exception, a crash or a sanitizer report is a finding. A config that
// parses has what the reference promises (a source and a sink, each with a known type and a
// plain name, inputs that name sources); an error lists at least one problem, each naming the
// file and saying what is wrong.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "app/config.h"
#include "app/config_parser.h"
#include "app/kinds.h"

namespace {

void check(bool ok) {
    if (!ok) {
        std::abort();
    }
}

constexpr std::string_view file_name = "fuzz.toml";

void check_config(const sluice::config& c) {
    check(!c.sources.empty());
    check(!c.sinks.empty());
    check(c.queue.low_watermark > 0 && c.queue.low_watermark < 1);
    std::set<std::string, std::less<>> sources;
    for (const auto& s : c.sources) {
        check(sluice::valid_component_name(s.name));
        check(s.kind != nullptr && sluice::find_source_kind(s.kind->name) == s.kind);
        check(s.settings.type() == s.kind->defaults().type());  // the type's own struct
        check(sources.insert(s.name).second);
    }
    std::set<std::string, std::less<>> sinks;
    for (const auto& s : c.sinks) {
        check(sluice::valid_component_name(s.name));
        check(s.kind != nullptr && sluice::find_sink_kind(s.kind->name) == s.kind);
        check(s.settings.type() == s.kind->defaults().type());
        check(sinks.insert(s.name).second);
        for (const auto& input : s.inputs) {
            check(sources.count(input) == 1);
        }
    }
}

void check_error(const sluice::config_error& e) {
    check(!e.problems().empty());
    for (const auto& p : e.problems()) {
        check(p.file == file_name);
        check(!p.message.empty());
        check(p.line >= 0 && p.column >= 0);
        check(p.to_string().starts_with(file_name));
    }
    check(std::string_view(e.what()).starts_with(file_name));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        check_config(sluice::parse_config(text, file_name));
    } catch (const sluice::config_error& e) {
        check_error(e);
    }
    return 0;
}
