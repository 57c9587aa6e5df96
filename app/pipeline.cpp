#include "app/pipeline.h"

#include <malloc.h>

#include <csignal>

#include <asio/post.hpp>
#include <asio/signal_set.hpp>
#include <spdlog/spdlog.h>

#include "app/http_api.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/units.h"
#include "app/kinds.h"

namespace sluice {

namespace {

constexpr auto shutdown_poll = std::chrono::milliseconds(10);
constexpr auto trim_interval = std::chrono::seconds(1);
// A backlog this large that has drained to an eighth of its peak is worth a malloc_trim.
constexpr uint64_t trim_backlog_bytes = 8ull << 20;

}  // namespace

pipeline::pipeline(config cfg)
    : config_(std::move(cfg)), pool_(config_.io_threads), io_(pool_.home()) {
    std::error_code ec;
    std::filesystem::create_directories(config_.data_dir, ec);
    if (ec) {
        throw error("cannot create data_dir " + config_.data_dir.string() + ": " + ec.message());
    }
    std::vector<std::string> source_names;
    for (const auto& s : config_.sources) {
        source_names.push_back(s.name);
    }
    std::vector<std::vector<bool>> inputs;
    for (const auto& k : config_.sinks) {
        std::vector<bool> takes(source_names.size(), k.inputs.empty());
        for (const auto& in : k.inputs) {
            for (size_t s = 0; s < source_names.size(); ++s) {
                takes[s] = takes[s] || source_names[s] == in;
            }
        }
        inputs.push_back(std::move(takes));
    }
    queue_ = std::make_unique<bounded_queue>(config_.queue, source_names.size(), inputs);
    // Each source posts the resume to every loop it works on.
    queue_->set_resume_callback([this] {
        for (auto& s : sources_) {
            s->resume();
        }
    });
    // Acknowledgements reach a source on the io thread, like resume.
    queue_->set_delivery_callback([this](source_id s) {
        asio::post(io_, [this, s] { sources_[s]->on_delivered(); });
    });
    for (size_t i = 0; i < config_.sources.size(); ++i) {
        const source_context context{config_.sources[i], static_cast<source_id>(i), io_,
                                     pool_.loops(), *queue_, zmq_context_, config_.data_dir};
        sources_.push_back(config_.sources[i].kind->make(context));
    }
    for (const auto& k : config_.sinks) {
        sinks_.push_back(k.kind->make(sink_context{k, zmq_context_, config_.data_dir, source_names}));
    }
    api_ = std::make_unique<http_api>(*this, config_.api.address);
}

pipeline::~pipeline() {
    for (auto& k : sinks_) {
        k->abort();
    }
    api_.reset();
}

int pipeline::run() {
    started_unix_ns_ = unix_now_ns();
    asio::signal_set signals(io_, SIGINT, SIGTERM, SIGHUP);
    std::function<void(const asio::error_code&, int)> on_signal =
        [&](const asio::error_code& ec, int signal) {
            if (ec) {
                return;
            }
            if (signal == SIGHUP) {
                spdlog::info("SIGHUP: reopening the file sinks' files.");
                for (auto& k : sinks_) {
                    k->request_reopen();
                }
            } else if (shutting_down_) {
                spdlog::warn("Second signal: exiting at once; {} events were not delivered.",
                             queue_->events_size_guess());
                std::_Exit(1);
            } else {
                spdlog::info("Signal {}: shutting down within {:.1f} s.", signal,
                             std::chrono::duration<double>(config_.shutdown_timeout).count());
                begin_shutdown(0);
            }
            signals.async_wait(on_signal);
        };
    signals.async_wait(on_signal);

    for (size_t i = 0; i < sinks_.size(); ++i) {
        sinks_[i]->start(*queue_, i);
    }
    try {
        for (auto& s : sources_) {
            s->start();
        }
        api_->start();
    } catch (const error&) {
        for (auto& s : sources_) {
            s->stop();
        }
        queue_->close();
        for (auto& k : sinks_) {
            k->join();
        }
        throw;
    }
    spdlog::info("sluice {} running: {} sources, {} sinks, {} io thread{}, queue {} events / {} "
                 "bytes, {}.",
                 SLUICE_VERSION, sources_.size(), sinks_.size(), pool_.size(),
                 pool_.size() == 1 ? "" : "s", config_.queue.max_events, config_.queue.max_bytes,
                 to_string(config_.queue.when_full));
    trim_timer_ = std::make_unique<asio::steady_timer>(io_);
    trim_memory_later();
    pool_.run();
    for (auto& k : sinks_) {
        k->join();
    }
    // Every sink has ended: what they wrote is acknowledged; file offsets are saved now.
    for (auto& s : sources_) {
        s->flush_acknowledgements();
    }
    api_->stop();
    return exit_code_;
}

void pipeline::trim_memory_later() {
    trim_timer_->expires_after(trim_interval);
    trim_timer_->async_wait([this](const asio::error_code& ec) {
        if (ec || shutting_down_) {
            return;
        }
        const uint64_t now = queue_->bytes_size_guess();
        queue_peak_bytes_ = std::max(queue_peak_bytes_, now);
        if (queue_peak_bytes_ >= trim_backlog_bytes && now <= queue_peak_bytes_ / 8) {
            // glibc keeps what the drained batches freed, spread over its heap; malloc_trim
            // returns the free pages (a few ms for a heap of tens of MiB).
            ::malloc_trim(0);
            queue_peak_bytes_ = now;
        }
        trim_memory_later();
    });
}

void pipeline::request_stop() {
    asio::post(io_, [this] { begin_shutdown(0); });
}

void pipeline::begin_shutdown(int exit_code) {
    exit_code_ = std::max(exit_code_, exit_code);
    if (shutting_down_) {
        return;
    }
    shutting_down_ = true;
    shutdown_deadline_ = std::chrono::steady_clock::now() + config_.shutdown_timeout;
    for (auto& s : sources_) {
        s->stop();
    }
    shutdown_timer_ = std::make_unique<asio::steady_timer>(io_);
    watch_shutdown();
}

// Polls the shutdown's progress: sources idle -> close the queue -> sinks drained.
void pipeline::watch_shutdown() {
    if (!queue_closed_) {
        bool idle = true;
        for (const auto& s : sources_) {
            idle = idle && s->idle();
        }
        if (idle) {
            queue_->close();
            queue_closed_ = true;
        }
    }
    bool drained = queue_closed_;
    for (const auto& k : sinks_) {
        drained = drained && k->finished();
    }
    if (drained) {
        finish(exit_code_);
        return;
    }
    if (std::chrono::steady_clock::now() >= shutdown_deadline_) {
        const queue_stats stats = queue_->stats();
        for (size_t k = 0; k < sinks_.size(); ++k) {
            if (!sinks_[k]->finished() && stats.sinks[k].events > 0) {
                spdlog::error("Shutdown timeout: sink {} ({}) did not write {} events ({}).",
                              sinks_[k]->name(), to_string(sinks_[k]->state()),
                              stats.sinks[k].events, format_size(stats.sinks[k].bytes));
            }
        }
        spdlog::error("Shutdown timeout: {} events in {} could not be delivered and are lost.",
                      stats.events, format_size(stats.bytes));
        finish(1);
        return;
    }
    shutdown_timer_->expires_after(shutdown_poll);
    shutdown_timer_->async_wait([this](const asio::error_code& ec) {
        if (!ec) {
            watch_shutdown();
        }
    });
}

void pipeline::finish(int exit_code) {
    exit_code_ = std::max(exit_code_, exit_code);
    for (auto& k : sinks_) {
        if (!k->finished()) {
            k->abort();
        }
    }
    if (exit_code_ == 0) {
        spdlog::info("Shutdown complete: everything read was delivered.");
    }
    pool_.stop();
}

}  // namespace sluice
