// One event-loop thread: its own listening sockets (SO_REUSEPORT), its sessions, no shared locks.
#pragma once

#include <uv.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/compressed_framer.h"
#include "common/memory_budget.h"
#include "common/packet_buffer.h"
#include "common/spare_buffer.h"
#include "proxy/io.h"
#include "proxy/poller.h"
#include "proxy/runtime_config.h"
#include "proxy/stats.h"

namespace sluice {

class Session;

// State shared by all workers for one listener: max_connections is per
// listener, not per worker, so the open-session count is one atomic; so is
// the round robin over upstreams, so that successive sessions take
// successive upstreams whichever worker accepts them.
struct ListenerShared {
  std::atomic<std::uint32_t> active{0};
  std::atomic<std::uint32_t> round_robin{0};
};

class Worker {
 public:
  Worker(std::size_t id, std::shared_ptr<const RuntimeConfig> config, MemoryBudget& budget,
         std::vector<ListenerShared>& shared, Syscalls& sys);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Opens this worker's listening sockets; false (with `error`) if one fails.
  // `ports`, when given, replace the configured ones (a port-0 listener gets
  // the port the first worker was given).
  bool open_listeners(const std::vector<std::uint16_t>& ports, std::string* error);
  // The port each listener is bound to (what the kernel chose for port 0).
  std::vector<std::uint16_t> bound_ports() const;
  void start();  // runs the loop on its own thread
  void join();

  // Thread-safe requests, delivered through the loop's async handle.
  void post_config(std::shared_ptr<const RuntimeConfig> config);
  void post_drain();
  void post_force_close();
  // Called on the worker thread when its loop has ended.
  void set_on_exit(std::function<void()> fn) { on_exit_ = std::move(fn); }

  // For sessions (worker thread only).
  Poller& poller() { return poller_; }
  // The worker's clock (CLOCK_MONOTONIC), read once per wakeup: what the
  // sessions' deadlines (ms) and command timings (ns) are measured on.
  std::uint64_t now_ns() const { return now_ns_; }
  std::uint64_t now_ms() const { return now_ns_ / 1'000'000u; }
  const RuntimeConfig& runtime() const { return *config_; }
  WorkerStats& stats() { return stats_; }
  BufferPool& pool() { return pool_; }
  MemoryBudget& budget() { return budget_; }
  // The last large packet buffer, for the next one (see SpareBuffer).
  SpareBuffer& spare() { return spare_; }
  // Keeps `b` as the spare for up to kSpareKeepMs.
  void keep_spare(SpareBuffer::Block b);
  Syscalls& sys() { return sys_; }
  // What every compressed session's framers inflate with (see CompressedFramer).
  CompressedFramer::Workspace& inflate_workspace() { return *inflate_workspace_; }
  ListenerShared& shared(std::size_t listener) { return shared_[listener]; }
  bool draining() const { return draining_; }
  std::size_t next_upstream(std::size_t listener, std::size_t count);
  // The current address of upstream `i` of `listener` (len 0: not resolved).
  const ResolvedAddress& upstream(std::size_t listener, std::size_t i) const {
    return upstreams_[listener][i];
  }
  std::size_t upstream_count(std::size_t listener) const { return upstreams_[listener].size(); }
  // The session has closed every fd; it is freed once the current wakeup's
  // events are delivered (one of them may still name it).
  void on_session_closed(Session* session);
  // The session's reads of this wakeup left whole packets to write: they are
  // written with every other session's when the wakeup's events have all been
  // delivered, in one system call where the kernel allows (see WriteRing).
  void defer_write(Session* session) { deferred_.push_back(session); }

  // Session deadlines (ms on the worker's clock), earliest first. One timerfd per
  // worker wakes the loop for the earliest, so session deadlines never give
  // epoll_wait a timeout: a timed epoll_wait arms and cancels a kernel hrtimer
  // on every sleep (about 1,000 kernel instructions per point select,
  // measured). Only libuv's own timers do, while they run: name lookups every
  // 5 s when an upstream is a host name, and the check of a kept large buffer.
  using Deadlines = std::multimap<std::uint64_t, Session*>;
  Deadlines::iterator no_deadline() { return deadlines_.end(); }
  Deadlines::iterator schedule(Session* session, std::uint64_t due);
  void unschedule(Deadlines::iterator it);

 private:
  struct Listener {
    Worker* worker = nullptr;
    std::size_t index = 0;
    int fd = -1;
    uv_poll_t poll{};
    bool open = false;
  };

  void run();
  [[gnu::hot]] void tick();
  [[gnu::hot]] void serve_sockets();
  // Ends every wakeup: the deferred writes go out, then closed sessions are
  // freed (a deferred write may close its session).
  void end_wakeup() {
    if (!deferred_.empty()) write_deferred();
    if (!closed_.empty()) free_closed_sessions();
  }
  void write_deferred();
  void free_closed_sessions();
  void seed_upstreams();
  void adopt_upstreams();
  void resolve_names();
  void on_async();
  void on_accept(Listener& l);
  void admit(Listener& l, int fd);
  void close_listeners();
  void maybe_stop();
  void on_deadlines();
  void arm_deadline_timer();

  std::size_t id_;
  std::shared_ptr<const RuntimeConfig> config_;
  MemoryBudget& budget_;
  std::vector<ListenerShared>& shared_;
  Syscalls& sys_;
  Io io_;
  WorkerStats stats_;
  BufferPool pool_;
  // Before the sessions, whose framers give their inflate streams back to it.
  std::unique_ptr<CompressedFramer::Workspace> inflate_workspace_ =
      std::make_unique<CompressedFramer::Workspace>();
  uv_loop_t loop_{};
  Poller poller_;
  std::uint64_t now_ns_ = 0;
  // Set when this thread changed libuv's state outside a libuv callback (a
  // timer started, handles closed): libuv's loop must run before the next wait.
  bool uv_wanted_ = false;
  std::vector<Session*> closed_;    // closed this wakeup, freed after it
  std::vector<Session*> deferred_;  // with writes owed at the end of this wakeup
  std::vector<WriteOp> write_ops_;  // those writes
  uv_async_t async_{};
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::unordered_map<Session*, std::unique_ptr<Session>> sessions_;
  // This worker's view of the upstream addresses: the config's, with names
  // looked up again every kResolveInterval so a moved database is followed.
  std::vector<std::vector<ResolvedAddress>> upstreams_;
  uv_timer_t resolve_timer_{};
  Deadlines deadlines_;
  std::vector<Session*> due_now_;
  int timer_fd_ = -1;
  std::string init_error_;  // what failed in the constructor (the worker cannot run)
  bool loop_ready_ = false;
  uv_poll_t timer_poll_{};
  std::uint64_t timer_armed_for_ = 0;  // due time the timerfd is set for, 0 = not set
  SpareBuffer spare_;
  uv_timer_t spare_timer_{};  // drops the spare when stale or memory is short
  std::uint64_t spare_kept_at_ = 0;
  std::thread thread_;
  std::function<void()> on_exit_;
  bool draining_ = false;
  bool stopping_ = false;

  std::mutex inbox_mu_;
  std::shared_ptr<const RuntimeConfig> pending_config_;  // guarded by inbox_mu_
  bool pending_drain_ = false;                           // guarded by inbox_mu_
  bool pending_force_ = false;                           // guarded by inbox_mu_
};

}  // namespace sluice
