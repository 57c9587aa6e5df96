// lines.h: the benchmark's line generator, shared by loadgen (TCP), zmq_loadgen and
// udp_loadgen so that every scenario sends the same lines.
//
// Line i of the text format: a 10-digit sequence number, a space, then source line i mod n of
// tests/data/real_logs/*.log (files in name order); cut to 250 bytes, or padded to 80 by
// repeating the source text after " | ". Every line is distinct; deterministic for a given log
// set. The other formats wrap that same text line:
//   json        {"ts":"2026-11-26T08:00:00.000123Z","level":"info","msg":"<text line>"}
//               (msg JSON-escaped; ts advances 1 us per line)
//   syslog5424  <PRI>1 TIMESTAMP HOST APP PROCID MSGID [bench@32473 seq="N" log="Name"] <text line>
//   syslog3164  <PRI>Mmm dd hh:mm:ss HOST TAG[PID]: <text line>   (TAGs as in Linux_2k.log)
// PRI, HOST, APP/TAG, PROCID and MSGID vary with i.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace bench {

constexpr std::size_t min_line_bytes = 80;   // text format, without the '\n'
constexpr std::size_t max_line_bytes = 250;  // text format, without the '\n'

enum class line_format { text, json, syslog5424, syslog3164 };

inline bool parse_format(std::string_view s, line_format& out) {
    if (s == "text") {
        out = line_format::text;
    } else if (s == "json") {
        out = line_format::json;
    } else if (s == "syslog5424") {
        out = line_format::syslog5424;
    } else if (s == "syslog3164") {
        out = line_format::syslog3164;
    } else {
        return false;
    }
    return true;
}

[[noreturn]] inline void die(const char* prog, const std::string& what) {
    std::fprintf(stderr, "%s: %s\n", prog, what.c_str());
    std::exit(1);
}

struct source_lines {
    std::vector<std::string> lines;
    std::vector<std::string> log_names;  // per line: the file's stem ("Linux_2k")
};

// Every non-empty line of every *.log file in dir, files in name order, '\r' stripped.
inline source_lines read_source_lines(const char* prog, const std::string& dir) {
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        if (entry.is_regular_file() && entry.path().extension() == ".log") {
            files.push_back(entry.path());
        }
    }
    std::sort(files.begin(), files.end());
    source_lines out;
    for (const auto& path : files) {
        std::ifstream in(path, std::ios::binary);
        std::string line;
        const std::string stem = path.stem().string();
        while (std::getline(in, line)) {
            if (!line.empty() && line.back() == '\r') {
                line.pop_back();
            }
            if (!line.empty()) {
                out.lines.push_back(std::move(line));
                out.log_names.push_back(stem);
            }
        }
    }
    if (out.lines.empty()) {
        die(prog, "no lines found in " + dir + "/*.log");
    }
    return out;
}

namespace detail {

inline void append_text_line(std::string& buf, const std::string& body, std::size_t i) {
    char prefix[32];
    const int n = std::snprintf(prefix, sizeof prefix, "%010zu ", i);
    const std::size_t start = buf.size();
    buf.append(prefix, static_cast<std::size_t>(n));
    buf.append(body, 0, max_line_bytes - static_cast<std::size_t>(n));
    if (buf.size() - start < min_line_bytes) {
        buf.append(" | ");
        for (std::size_t k = 0; buf.size() - start < min_line_bytes; ++k) {
            buf.push_back(body[k % body.size()]);
        }
    }
}

inline void append_json_escaped(std::string& buf, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            buf.push_back('\\');
            buf.push_back(ch);
        } else if (c < 0x20) {
            buf.append("\\u00");
            buf.push_back(hex[c >> 4]);
            buf.push_back(hex[c & 15]);
        } else {
            buf.push_back(ch);
        }
    }
}

// 2026-11-26T08:00:00Z plus `us` microseconds, as RFC 3339 with microseconds.
inline void append_rfc3339(std::string& buf, std::uint64_t us) {
    const std::uint64_t secs = us / 1'000'000;
    const unsigned day = 26 + static_cast<unsigned>(secs / 86400);  // stays in Nov for < 4 days
    const unsigned h = 8 + static_cast<unsigned>(secs % 86400 / 3600);
    char text[48];
    const int n = std::snprintf(text, sizeof text, "2026-11-%02uT%02u:%02u:%02u.%06uZ",
                                day + h / 24, h % 24, static_cast<unsigned>(secs % 3600 / 60),
                                static_cast<unsigned>(secs % 60),
                                static_cast<unsigned>(us % 1'000'000));
    buf.append(text, static_cast<std::size_t>(n));
}

}  // namespace detail

// Builds `count` lines of `format`, each followed by '\n', into one buffer; line_ends[i] is
// the offset just past line i's '\n'.
inline std::string generate(const source_lines& src, std::size_t count, line_format format,
                            std::vector<std::size_t>& line_ends) {
    static constexpr const char* hosts[] = {"combo", "web-01", "db-02", "edge-17"};
    static constexpr const char* apps[] = {"sshd", "kernel", "cron", "nginx", "app-api"};
    static constexpr const char* msgids[] = {"-", "AUTH", "REQ", "GC"};
    // As in Linux_2k.log; the first element of each pair is the TAG, the second says whether it
    // has a [PID].
    static constexpr std::pair<const char*, bool> tags[] = {
        {"sshd(pam_unix)", true}, {"sshd", true},  {"kernel", false}, {"su(pam_unix)", true},
        {"ftpd", true},           {"cups", false}, {"syslogd", false}, {"xinetd", true}};
    static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::string buf;
    buf.reserve(count * (format == line_format::text ? 160 : 230));
    line_ends.clear();
    line_ends.reserve(count);
    std::string text;
    char head[160];
    for (std::size_t i = 0; i < count; ++i) {
        const std::size_t s = i % src.lines.size();
        const unsigned pri = static_cast<unsigned>((i % 24) * 8 + (i * 7 + 3) % 8);
        switch (format) {
            case line_format::text:
                detail::append_text_line(buf, src.lines[s], i);
                break;
            case line_format::json:
                text.clear();
                detail::append_text_line(text, src.lines[s], i);
                buf.append("{\"ts\":\"");
                detail::append_rfc3339(buf, i);
                buf.append("\",\"level\":\"info\",\"msg\":\"");
                detail::append_json_escaped(buf, text);
                buf.append("\"}");
                break;
            case line_format::syslog5424: {
                buf.push_back('<');
                buf.append(std::to_string(pri));
                buf.append(">1 ");
                detail::append_rfc3339(buf, i);
                const int n = std::snprintf(
                    head, sizeof head, " %s %s %zu %s [bench@32473 seq=\"%zu\" log=\"%s\"] ",
                    hosts[i % 4], apps[i % 5], 1000 + i % 30000, msgids[i % 4], i,
                    src.log_names[s].c_str());
                buf.append(head, static_cast<std::size_t>(n));
                detail::append_text_line(buf, src.lines[s], i);
                break;
            }
            case line_format::syslog3164: {
                const std::size_t secs = i / 1000;  // 1000 lines a second, from Jun 14 15:16:01
                const std::size_t t = 15 * 3600 + 16 * 60 + 1 + secs;
                const auto& tag = tags[i % 8];
                int n = std::snprintf(head, sizeof head, "<%u>%s %2zu %02zu:%02zu:%02zu %s %s", pri,
                                      months[5], 14 + t / 86400, t % 86400 / 3600,
                                      t % 3600 / 60, t % 60, hosts[i % 4], tag.first);
                buf.append(head, static_cast<std::size_t>(n));
                if (tag.second) {
                    n = std::snprintf(head, sizeof head, "[%zu]", 1000 + i % 30000);
                    buf.append(head, static_cast<std::size_t>(n));
                }
                buf.append(": ");
                detail::append_text_line(buf, src.lines[s], i);
                break;
            }
        }
        buf.push_back('\n');
        line_ends.push_back(buf.size());
    }
    return buf;
}

}  // namespace bench
