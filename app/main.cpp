// sluice: the command line. `run` runs the pipeline, `validate` checks a config, `top` watches
// a running instance.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <iostream>

#include "app/config.h"
#include "app/pipeline.h"
#include "app/top_terminal.h"
#include "common/units.h"

namespace {

constexpr int exit_ok = 0;
constexpr int exit_runtime = 1;
constexpr int exit_usage = 2;

void print_config_error(const sluice::config_error& e) {
    for (const auto& p : e.problems()) {
        std::cerr << p.to_string() << '\n';
    }
}

// A file source may hold thousands of files open, an aggregator thousands of connections: take
// the hard limit of open files, not the soft one (often 1024).
void raise_open_files_limit() {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        const rlim_t was = limit.rlim_cur;
        limit.rlim_cur = limit.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &limit) == 0) {
            spdlog::debug("Open files limit raised from {} to {}.", was, limit.rlim_cur);
        }
    }
}

int run_command(const std::string& config_path, const std::string& log_level) {
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v");
    const auto level = spdlog::level::from_str(log_level);
    if (level == spdlog::level::off && log_level != "off") {
        std::cerr << "unknown --log-level '" << log_level
                  << "' (trace, debug, info, warn, error, critical, off)\n";
        return exit_usage;
    }
    spdlog::set_level(level);
    sluice::config cfg;
    try {
        cfg = config_path.empty() ? sluice::default_config() : sluice::load_config(config_path);
    } catch (const sluice::config_error& e) {
        print_config_error(e);
        return exit_usage;
    } catch (const sluice::error& e) {
        std::cerr << e.what() << '\n';
        return exit_usage;
    }
    raise_open_files_limit();
    // A peer gone (EPIPE) or a file-size limit reached (EFBIG) fails one write, which is
    // retried and counted; neither may kill the daemon.
    std::signal(SIGPIPE, SIG_IGN);
    std::signal(SIGXFSZ, SIG_IGN);
    try {
        sluice::pipeline p(std::move(cfg));
        return p.run();
    } catch (const std::exception& e) {
        spdlog::critical("{}", e.what());
        return exit_runtime;
    }
}

int validate_command(const std::string& config_path) {
    try {
        sluice::load_config(config_path);
    } catch (const sluice::config_error& e) {
        print_config_error(e);
        return exit_usage;
    } catch (const sluice::error& e) {
        std::cerr << e.what() << '\n';
        return exit_usage;
    }
    std::cout << "ok\n";
    return exit_ok;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"sluice: a log ingestion daemon with a bounded queue and backpressure"};
    app.set_version_flag("--version", std::string("sluice ") + SLUICE_VERSION);
    app.require_subcommand(1);

    std::string run_config;
    std::string log_level = "info";
    auto* run = app.add_subcommand("run", "Run the pipeline (the built-in default without -c)");
    run->add_option("-c,--config", run_config, "Config file (TOML)");
    run->add_option("--log-level", log_level,
                    "trace, debug, info, warn, error, critical or off");

    std::string validate_config;
    auto* validate = app.add_subcommand("validate", "Check a config without running it");
    validate->add_option("-c,--config", validate_config, "Config file (TOML)")->required();

    sluice::top_options top_options;
    std::string top_interval = "1s";
    auto* top = app.add_subcommand("top", "Live terminal dashboard of a running instance");
    top->add_option("--url", top_options.url, "The instance's HTTP API")
        ->capture_default_str();
    top->add_option("--interval", top_interval, "Time between two polls of /status")
        ->capture_default_str();
    top->add_flag("--once", top_options.once,
                  "Print one screen as plain text (rates over one interval) and exit");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        return code == 0 ? exit_ok : exit_usage;
    }
    if (run->parsed()) {
        return run_command(run_config, log_level);
    }
    if (top->parsed()) {
        const auto interval = sluice::parse_duration(top_interval);
        if (!interval || *interval < std::chrono::milliseconds(100)) {
            std::cerr << "--interval '" << top_interval
                      << "': expected a duration of at least 100ms, such as \"1s\"\n";
            return exit_usage;
        }
        top_options.interval = std::chrono::duration_cast<std::chrono::milliseconds>(*interval);
        return sluice::run_top(top_options);
    }
    return validate_command(validate_config);
}
