// The process: workers, the metrics endpoint, signals (drain on TERM/INT, reload on HUP).
#include "proxy/server.h"

#include <sys/resource.h>
#include <uv.h>

#include <malloc.h>
#include <pthread.h>

#include <csignal>
#include <memory>
#include <thread>

#include "proxy/listen_probe.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/runtime_config.h"
#include "proxy/session.h"
#include "proxy/worker.h"

namespace sluice {
namespace {

// Up to the hard limit: every session needs two descriptors.
// Below this, start-up could fail inside libuv's one-time set-up of its
// default loop, which aborts instead of reporting an error.
constexpr rlim_t kMinFds = 32;

// Raises the soft fd limit to the hard one; returns the limit now in force.
rlim_t raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return RLIM_INFINITY;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur;
}

// SIGTERM/SIGINT/SIGHUP: blocked from start-up until the main loop handles
// them, and in every worker thread (which inherit the mask) for good.
sigset_t control_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

unsigned worker_count(const Config& c) {
  if (c.workers != 0) return c.workers;
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

// What a reload cannot change without a restart.
std::vector<std::string> restart_only_changes(const Config& old_c, const Config& new_c) {
  std::vector<std::string> out;
  if (old_c.workers != new_c.workers) out.push_back("workers");
  // The endpoint is built once, at start-up, from every metrics key.
  if (!(old_c.metrics.listen == new_c.metrics.listen)) out.push_back("metrics.listen");
  if (old_c.metrics.path != new_c.metrics.path) out.push_back("metrics.path");
  if (old_c.metrics.username != new_c.metrics.username) out.push_back("metrics.username");
  if (old_c.metrics.password_file != new_c.metrics.password_file) {
    out.push_back("metrics.password_file");
  }
  if (old_c.listeners.size() != new_c.listeners.size()) {
    out.push_back("listeners (count)");
    return out;
  }
  for (std::size_t i = 0; i < old_c.listeners.size(); ++i) {
    const std::string key = "listeners[" + std::to_string(i) + "]";
    if (!(old_c.listeners[i].listen == new_c.listeners[i].listen)) out.push_back(key + ".listen");
    if (old_c.listeners[i].name != new_c.listeners[i].name) out.push_back(key + ".name");
  }
  return out;
}

class Server {
 public:
  Server(const ServerOptions& options, std::shared_ptr<const RuntimeConfig> config)
      : options_(options),
        config_(std::move(config)),
        budget_(config_->config.memory_limit, Session::kStreamChunk) {}

  int run();

 private:
  void on_signal(int signum);
  void pin_ports(const std::vector<std::uint16_t>& ports);
  void reload();
  void drain();
  void on_worker_exit();

  const ServerOptions& options_;
  std::shared_ptr<const RuntimeConfig> config_;
  MemoryBudget budget_;
  GlobalStats globals_;
  std::vector<ListenerShared> shared_{config_->config.listeners.size()};
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<MetricsServer> metrics_;
  uv_loop_t* loop_ = uv_default_loop();
  uv_signal_t sigterm_{}, sigint_{}, sighup_{};
  uv_async_t worker_exit_{};
  uv_timer_t shutdown_timer_{};
  std::atomic<unsigned> exited_{0};
  bool draining_ = false;
};

int Server::run() {
  // Before anything starts: a port another process (another sluice included) listens on is an
  // error, as for mysqld, although the workers' SO_REUSEPORT would let them share it.
  if (std::string error; !probe_listen_addresses(config_->config.listeners, &error)) {
    log_event(LogLevel::kError, "listen_failed", field("error", error));
    return 1;
  }
  for (unsigned i = 0; i < worker_count(config_->config); ++i) {
    workers_.push_back(std::make_unique<Worker>(i, config_, budget_, shared_, real_syscalls()));
  }
  // The metrics endpoint is complete before any listener exists, so whoever
  // can connect to sluice can also scrape it.
  std::vector<std::string> names;
  for (const ListenerConfig& l : config_->config.listeners) names.push_back(l.name);
  auto collector = std::make_shared<MetricsCollector>(names, budget_, globals_);
  for (auto& w : workers_) collector->add_worker(&w->stats());
  if (std::string error; !probe_metrics_address(config_->config.metrics.listen, &error)) {
    log_event(LogLevel::kError, "metrics_listen_failed", field("error", error));
    return 1;
  }
  try {
    metrics_ = std::make_unique<MetricsServer>(config_->config.metrics, collector);
  } catch (const std::exception& e) {
    log_event(LogLevel::kError, "metrics_listen_failed",
              field("address", config_->config.metrics.listen.text()), field("error", e.what()));
    return 1;
  }
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    std::string error;
    const std::vector<std::uint16_t> ports =
        i == 0 ? std::vector<std::uint16_t>{} : workers_.front()->bound_ports();
    if (!workers_[i]->open_listeners(ports, &error)) {
      log_event(LogLevel::kError, "listen_failed", field("error", error));
      return 1;
    }
    if (i == 0) pin_ports(workers_.front()->bound_ports());
  }
  const Config& c = config_->config;

  uv_async_init(loop_, &worker_exit_,
                [](uv_async_t* a) { static_cast<Server*>(a->data)->on_worker_exit(); });
  worker_exit_.data = this;
  for (uv_signal_t* s : {&sigterm_, &sigint_, &sighup_}) {
    uv_signal_init(loop_, s);
    s->data = this;
  }
  auto cb = [](uv_signal_t* s, int signum) { static_cast<Server*>(s->data)->on_signal(signum); };
  uv_signal_start(&sigterm_, cb, SIGTERM);
  uv_signal_start(&sigint_, cb, SIGINT);
  uv_signal_start(&sighup_, cb, SIGHUP);
  // Signals that arrived during start-up were held (see run_server); the
  // handlers exist now, so they are delivered here, on the main loop.
  sigset_t set = control_signals();
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  uv_timer_init(loop_, &shutdown_timer_);
  shutdown_timer_.data = this;

  for (auto& w : workers_) {
    w->set_on_exit([this] {
      exited_.fetch_add(1);
      uv_async_send(&worker_exit_);
    });
    w->start();
  }
  // Port 0 lets the kernel choose: say which one it chose, as for listeners.
  HostPort bound_metrics = c.metrics.listen;
  bound_metrics.port = static_cast<std::uint16_t>(metrics_->port());
  std::string listens;
  for (const ListenerConfig& l : c.listeners)
    listens += (listens.empty() ? "" : ",") + l.listen.text();
  log_event(LogLevel::kInfo, "started", field("version", SLUICE_VERSION), field("listen", listens),
            field("metrics", bound_metrics.text() + c.metrics.path),
            number("workers", std::uint64_t{workers_.size()}));
  uv_run(loop_, UV_RUN_DEFAULT);
  for (auto& w : workers_) w->join();
  metrics_.reset();
  log_event(LogLevel::kInfo, "stopped");
  return 0;
}

// A listener on port 0 gets its port from the kernel once; every other worker
// (and every reload) then binds that same port.
void Server::pin_ports(const std::vector<std::uint16_t>& ports) {
  bool changed = false;
  Config pinned = config_->config;
  for (std::size_t i = 0; i < ports.size(); ++i) {
    if (pinned.listeners[i].listen.port == 0) {
      pinned.listeners[i].listen.port = ports[i];
      changed = true;
    }
  }
  if (!changed) return;
  auto rc = std::make_shared<RuntimeConfig>(*config_);
  rc->config = std::move(pinned);
  config_ = rc;
}

void Server::on_signal(int signum) {
  if (signum == SIGHUP) return reload();
  drain();
}

void Server::drain() {
  if (draining_) return;
  draining_ = true;
  const Config& c = config_->config;
  log_event(LogLevel::kInfo, "draining",
            number("shutdown_timeout_s", c.shutdown_timeout.count() / 1000.0));
  for (auto& w : workers_) w->post_drain();
  uv_timer_start(
      &shutdown_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<Server*>(t->data);
        log_event(LogLevel::kWarn, "shutdown_timeout_reached");
        for (auto& w : self->workers_) w->post_force_close();
      },
      static_cast<std::uint64_t>(c.shutdown_timeout.count()), 0);
}

void Server::on_worker_exit() {
  if (exited_.load() < workers_.size()) return;
  uv_close(reinterpret_cast<uv_handle_t*>(&worker_exit_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&shutdown_timer_), nullptr);
  for (uv_signal_t* s : {&sigterm_, &sigint_, &sighup_}) {
    uv_close(reinterpret_cast<uv_handle_t*>(s), nullptr);
  }
}

// Limits, timeouts, errors, sequence_check and log level apply at once (open
// sessions from their next packet); upstreams to new sessions. What needs a
// restart (listen addresses, workers, the metrics endpoint's keys) keeps
// running as it is, and the log says so.
void Server::reload() {
  LoadedConfig loaded = load_config_file(options_.config_path, options_.overrides);
  std::vector<std::string> problems;
  for (const ConfigProblem& p : loaded.problems) problems.push_back(p.text());
  const Config& current = config_->config;
  Config& next = loaded.config;
  if (problems.empty() && next.listeners.size() != current.listeners.size()) {
    problems.push_back("the number of listeners changed: that needs a restart");
  }
  std::shared_ptr<const RuntimeConfig> runtime;
  if (problems.empty()) {
    for (std::size_t i = 0; i < next.listeners.size(); ++i) {
      HostPort& listen = next.listeners[i].listen;
      if (listen.port == 0 && listen.host == current.listeners[i].listen.host) {
        listen.port = current.listeners[i].listen.port;  // the port the kernel chose
      }
    }
    for (const std::string& key : restart_only_changes(current, next)) {
      log_event(LogLevel::kWarn, "reload_needs_restart", field("key", key));
    }
    next.workers = current.workers;
    next.metrics = current.metrics;
    for (std::size_t i = 0; i < next.listeners.size(); ++i) {
      next.listeners[i].listen = current.listeners[i].listen;
      next.listeners[i].name = current.listeners[i].name;
    }
    std::vector<std::string> unresolved;
    runtime = make_runtime_config(std::move(next), &unresolved);
    for (const std::string& w : unresolved) {
      log_event(LogLevel::kWarn, "upstream_unresolved", field("warning", w));
    }
  }
  if (!problems.empty()) {
    globals_.reloads_failed.fetch_add(1);
    for (const std::string& p : problems) {
      log_event(LogLevel::kError, "reload_failed", field("config", options_.config_path),
                field("problem", p));
    }
    return;
  }
  Log::get().configure(runtime->config.log.level, runtime->config.log.format);
  budget_.set_limit(runtime->config.memory_limit);
  for (const std::string& w : runtime->config.warnings) {
    log_event(LogLevel::kWarn, "config_warning", field("warning", w));
  }
  config_ = runtime;
  for (auto& w : workers_) w->post_config(runtime);
  globals_.reloads_ok.fetch_add(1);
  log_event(LogLevel::kInfo, "reloaded", field("config", options_.config_path));
}

}  // namespace

void hold_control_signals() {
  sigset_t set = control_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int run_server(const ServerOptions& options, Config config) {
  std::signal(SIGPIPE, SIG_IGN);
  // glibc raises its mmap threshold after large frees (up to 32 MiB), after
  // which freed packet buffers stay in its arenas: RSS would stay at the
  // high-water mark of past large packets. A fixed threshold keeps every
  // buffer of 1 MiB or more mmapped, and freeing it returns the memory.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  const rlim_t fds = raise_fd_limit();
  Log::get().configure(config.log.level, config.log.format);
  if (fds < kMinFds) {
    log_event(LogLevel::kError, "fd_limit_too_low", number("limit", std::uint64_t{fds}),
              number("minimum", std::uint64_t{kMinFds}));
    return 1;
  }
  for (const std::string& w : config.warnings)
    log_event(LogLevel::kWarn, "config_warning", field("warning", w));
  // An upstream name that does not resolve yet is not fatal: workers keep
  // looking it up, as a database container may start after sluice.
  std::vector<std::string> unresolved;
  auto runtime = make_runtime_config(std::move(config), &unresolved);
  for (const std::string& w : unresolved) {
    log_event(LogLevel::kWarn, "upstream_unresolved", field("warning", w));
  }
  Server server(options, runtime);
  return server.run();
}

}  // namespace sluice
