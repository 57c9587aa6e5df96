#include "app/http_api.h"

#include <httplib.h>
#include <unistd.h>

#include <fstream>

#include <spdlog/spdlog.h>

#include "app/pipeline.h"
#include "common/error.h"
#include "common/thread_name.h"
#include "ingest/tcp_source.h"

namespace sluice {

namespace {

constexpr size_t api_worker_threads = 2;

}  // namespace

http_api::http_api(const pipeline& p, std::string address)
    : pipeline_(p), address_(std::move(address)), server_(std::make_unique<httplib::Server>()) {
    // An idle keep-alive connection (Prometheus, sluice top) holds its worker until this
    // timeout, and stop() waits for the workers: keep it short so exit is not held up.
    server_->set_keep_alive_timeout(1);
    // cpp-httplib's default pool has max(8, cores - 1) threads that each hold a stack and
    // a malloc arena; the API serves a scraper, a `sluice top` and health probes. Two
    // workers answer two keep-alive clients at once; a third waits at most the 1 s
    // keep-alive timeout above for one of them to let go.
    server_->new_task_queue = [] { return new httplib::ThreadPool(api_worker_threads); };
    // Alive: 200 while the process runs; the body names any sink that is not writing.
    server_->Get("/health", [this](const httplib::Request&, httplib::Response& res) {
        res.set_content(render_health(pipeline_), "text/plain");
    });
    // Ready to take more: 503 while a sink is failed or the queue blocks its sources.
    server_->Get("/ready", [this](const httplib::Request&, httplib::Response& res) {
        std::string why = not_ready_reasons(pipeline_);
        res.status = why.empty() ? 200 : 503;
        res.set_content(why.empty() ? "ready\n" : why, "text/plain");
    });
    server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
        res.set_content(render_prometheus(pipeline_), "text/plain; version=0.0.4");
    });
    server_->Get("/status", [this](const httplib::Request&, httplib::Response& res) {
        res.set_content(render_status_json(pipeline_), "application/json");
    });
}

http_api::~http_api() { stop(); }

void http_api::start() {
    const auto endpoint = parse_tcp_endpoint(address_);
    const std::string host = endpoint.address().to_string();
    if (!server_->bind_to_port(host.c_str(), endpoint.port())) {
        throw error("api: cannot listen on " + address_);
    }
    spdlog::info("HTTP API on http://{}/ (/health, /ready, /metrics, /status).", address_);
    thread_ = std::thread([this] {
        set_thread_name("http-api");
        server_->listen_after_bind();
    });
}

void http_api::stop() {
    if (thread_.joinable()) {
        server_->stop();
        thread_.join();
    }
}

uint64_t resident_memory_bytes() {
    std::ifstream statm("/proc/self/statm");
    uint64_t size = 0;
    uint64_t resident = 0;
    statm >> size >> resident;
    return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace sluice
