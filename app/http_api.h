// http_api: the HTTP API (cpp-httplib) on its own thread, which accepts, and two workers,
// which answer: GET /health, /ready, /metrics (Prometheus text) and /status (one JSON
// snapshot). It only reads counters and the queue's stats; it has no route that changes
// anything.
#pragma once

#include <memory>
#include <string>
#include <thread>

namespace httplib {
class Server;
}

namespace sluice {

class pipeline;

class http_api {
public:
    http_api(const pipeline& p, std::string address);
    ~http_api();
    http_api(const http_api&) = delete;
    http_api& operator=(const http_api&) = delete;

    // Binds and starts serving on its own thread; throws sluice::error if it cannot bind.
    void start();
    void stop();

private:
    const pipeline& pipeline_;
    std::string address_;
    std::unique_ptr<httplib::Server> server_;
    std::thread thread_;
};

// The Prometheus text exposition of every metric in SPEC.md.
std::string render_prometheus(const pipeline& p);
// The same figures as one JSON object (what `sluice top` reads).
std::string render_status_json(const pipeline& p);
// /health's body: "ok", then a line per sink that is not writing (retrying or failed).
std::string render_health(const pipeline& p);
// Why /ready answers 503, a line each (a failed sink, a blocked queue); empty when ready.
std::string not_ready_reasons(const pipeline& p);
// This process's resident set size in bytes (from /proc/self/statm).
uint64_t resident_memory_bytes();

}  // namespace sluice
