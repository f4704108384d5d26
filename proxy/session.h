// One proxied client connection: its upstream, its two pipes, its protocol state and its teardown.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/compressed_framer.h"
#include "common/config.h"
#include "common/err_packet.h"
#include "common/framer.h"
#include "common/memory_budget.h"
#include "common/metric_table.h"
#include "common/packet_buffer.h"
#include "common/response_tracker.h"
#include "common/tls_records.h"
#include "proxy/io.h"
#include "proxy/poller.h"
#include "proxy/runtime_config.h"
#include "proxy/stats.h"

namespace sluice {

class Worker;

// Why a session ended: the log field, and the choice of error for the client.
enum class CloseReason : std::uint8_t {
  kClientQuit,    // the client sent COM_QUIT (whoever hung up first)
  kClientClosed,  // the client closed without COM_QUIT
  kServerClosed,  // the upstream closed
  kUpstreamUnavailable,
  kConnectTimeout,
  kHandshakeTimeout,
  kReadTimeout,
  kWriteTimeout,
  kIdleTimeout,
  kReadError,
  kWriteError,
  kClientWriteError,  // no ERR can reach a client we cannot write to
  kPacketTooLarge,
  kServerPacketTooLarge,
  kOutOfMemory,
  kOutOfOrder,
  kBadHandshake,
  kShutdown,
};
std::string_view close_reason_name(CloseReason r);

// The tracker reads only a packet's first bytes: OK/EOF status flags, column
// counts and statement ids all sit within them.
inline constexpr std::size_t kTrackedPrefix = 64;

enum class Phase : std::uint8_t {
  kConnecting,     // TCP connect to an upstream under way
  kAwaitGreeting,  // connected; waiting for the server's first packet
  kAwaitHello,     // greeting forwarded; waiting for the client's response
  kAuth,           // auth round trips until the server's OK or ERR
  kCommand,        // command phase: the tracker follows each exchange
  kOpaque,         // TLS (or zstd compression): bytes pass through unframed
  kLinger,         // closing: flushing a final ERR to the client
  kClosed,
};

// One direction of a session: the buffer, the framer over it, and its state.
struct Pipe {
  explicit Pipe(Direction d) : dir(d) {}
  // What every packet and every wakeup touch comes first (the kernel's TCP
  // work between two system calls evicts the L1 cache: fewer lines, fewer misses).
  PacketBuffer buf;
  Framer framer;
  std::uint64_t read_deadline = 0;   // a started packet must complete by this (ms)
  std::uint64_t write_deadline = 0;  // pending bytes must drain by this (ms)
  std::uint64_t paused_at = 0;       // when a memory wait began (ms), 0 = none
  MemoryBudget::Ticket ticket = 0;   // place in the memory queue while waiting
  std::uint64_t reserved = 0;        // bytes of buf reserved in the MemoryBudget
  Direction dir;
  bool eof = false;                   // the source closed
  bool discarding = false;            // an oversized packet is being thrown away
  bool holds_large_turn = false;      // this pipe holds one of the budget's multi-frame turns
  bool turn_wait = false;             // waiting for that turn
  bool blocked = false;               // no room to read until the destination drains
  bool first_payload_seen = false;    // discarding: its command byte was examined
  bool stream_eligible = false;       // a large server packet that may stream (see Session::scan)
  bool streaming = false;             // its first bytes went out: the rest follows as it arrives
  bool write_deferred = false;        // owes a write made at the end of this wakeup
  std::uint8_t crossing_seq = 0;      // seq of the frame that crossed a limit
  std::uint8_t last_seq = 0;          // seq of the latest frame header
  std::uint8_t inner_seq = 0;         // compressed sessions: seq of the latest inner header
  std::uint8_t packet_first_seq = 0;  // seq of the current packet's first frame
  // Compressed client frames: whole inner packets (commands the tracker has
  // seen) in frames held because the inner stream is not between packets.
  std::uint32_t held_packets = 0;
  // Set once the session negotiated compression: frames are then cut by their
  // compressed headers, and the inner packets are followed inside them.
  std::unique_ptr<CompressedFramer> cframer;
  std::uint64_t packets = 0;  // logical packets forwarded (for the close log)
  std::uint64_t bytes = 0;    // bytes forwarded (for the close log)
  // Discarding (cold, so after the per-packet state): the logical length that
  // crossed the limit, and in a compressed session the packet's length once
  // it has ended (its frame must end with it for the reject to stand; 0 before).
  std::uint64_t crossing_length = 0;
  std::uint64_t discarded_length = 0;
};

class Session {
 public:
  // A large server packet streams to the client once this much of it is
  // held, and then through a buffer of this size.
  static constexpr std::size_t kStreamChunk = 256 << 10;

  // Takes ownership of the accepted `client_fd`.
  Session(Worker& worker, std::size_t listener, int client_fd, std::string client_addr);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void start();
  // The one teardown path: logs once, counts, sends `reason`'s ERR where the
  // client can read one, closes every handle; the worker frees the session in
  // the last close callback.
  void close(CloseReason reason);
  // Called by the worker after a reload swapped the config.
  void apply_config(const RuntimeConfig& rc);
  // Drain: closes now if idle between commands, else when the exchange ends.
  void begin_drain();
  std::size_t listener() const { return listener_; }
  bool closed() const { return phase_ == Phase::kClosed || phase_ == Phase::kLinger; }
  // The end of a wakeup: adds the writes this session deferred to `ops`.
  void collect_writes(std::vector<WriteOp>& ops);
  // One of them was made (or failed): as after a flush.
  void on_batch_written(const WriteOp& op);
  // The worker's deadline queue removed this session's entry, then (in the
  // same wakeup) calls on_deadline().
  void forget_deadline();
  void on_deadline();

 private:
  // [[gnu::hot]] marks what runs on every packet or wakeup: the compiler puts
  // it together in .text.hot, so the code refetched after each system call
  // spans fewer cache lines and pages.
  // Lifecycle (session.cc).
  [[gnu::hot]] static void on_client_events(PollSlot& slot, std::uint32_t events);
  [[gnu::hot]] static void on_server_events(PollSlot& slot, std::uint32_t events);
  [[gnu::hot]] void update_poll();
  [[gnu::hot]] void arm_timer();
  void cancel_timer();
  void on_timer();
  [[gnu::hot]] std::uint64_t now() const;
  // The deadline `timeout` from now, in now()'s milliseconds.
  std::uint64_t after(Millis timeout) const {
    return now() + static_cast<std::uint64_t>(timeout.count());
  }
  void send_error_and_close(CloseReason reason, ErrorKind kind, std::uint8_t seq,
                            const ErrContext& ctx);
  void enter_linger();
  Millis linger_wait() const;
  bool owes_client() const;
  void finish_close();
  void log_close();
  [[gnu::hot]] void count_io(SysOp op, const IoResult& r);
  void leave_active();
  void release_slot();
  void resume(Pipe& p);
  bool idle_between_commands() const;

  // Upstream connect (upstream.cc).
  void connect_next_upstream();
  void on_connect_ready();
  void on_connected();
  void connect_failed(const std::string& why);
  void close_server_side();

  // Forward path (session_io.cc).
  [[gnu::hot]] void on_readable(Pipe& p);
  void on_linger_readable();
  void on_refused_readable();
  IoResult discard_client_input();
  [[gnu::hot]] void on_writable(Pipe& p);
  [[gnu::hot]] bool ensure_room(Pipe& p);
  [[gnu::hot]] bool reserve_memory(Pipe& p, std::uint64_t bytes);
  std::uint64_t large_claim(const Pipe& p) const;
  bool unproven(const Pipe& p) const;
  [[gnu::cold]] bool allocation_failed(Pipe& p, std::size_t bytes);
  bool take_turn_from_other(Pipe& p);
  void untracked_traffic(const Pipe& p);
  void release_memory(Pipe& p);
  [[gnu::hot]] void scan(Pipe& p, std::size_t from);
  [[gnu::hot]] void flush(Pipe& p);
  [[gnu::hot, gnu::always_inline]] inline void send_or_defer(Pipe& p);
  bool commands_must_wait() const;
  [[gnu::hot]] bool hold_commands(const Pipe& p, std::size_t pos);
  void release_held_commands();
  void client_done_while_holding();
  [[gnu::hot, gnu::always_inline]] inline int owed(Pipe& p, iovec* iov);
  [[gnu::hot]] bool owes(Pipe& p);
  [[gnu::hot, gnu::always_inline]] inline void on_written(Pipe& p, const IoResult& r);
  [[gnu::hot]] void after_drain(Pipe& p);
  void on_source_eof(Pipe& p);
  int src_fd(const Pipe& p) const;
  int dst_fd(const Pipe& p) const;
  [[gnu::hot]] bool reading_allowed(const Pipe& p) const;

  // Protocol policy (session_protocol.cc).
  [[gnu::hot]] bool on_header(Pipe& p, const FrameEvent& ev);
  [[gnu::hot]] void on_packet(Pipe& p, std::size_t start, std::size_t end, std::uint64_t length);
  [[gnu::hot]] void count_packet(Pipe& p, std::size_t wire_bytes, std::uint64_t length);
  bool may_stream(const Pipe& p, const FrameEvent& ev) const;
  bool server_packets_refusable() const;
  void stream_partial(Pipe& p);
  void end_stream(Pipe& p, std::size_t end, std::uint64_t length);
  [[gnu::hot]] void on_client_packet(const std::uint8_t* payload, std::size_t avail,
                                     std::uint64_t length, std::uint8_t seq);
  [[gnu::hot]] void on_server_packet(const std::uint8_t* payload, std::size_t avail,
                                     std::uint64_t length);
  [[gnu::hot]] bool check_sequence(Pipe& p, const FrameEvent& ev);
  bool pipelined(const FrameEvent& ev);
  [[gnu::hot]] bool check_limits(Pipe& p, const FrameEvent& ev);
  // Their rare outcomes, out of line.
  [[gnu::cold]] bool out_of_order(Pipe& p, const FrameEvent& ev, std::uint8_t expected);
  [[gnu::cold]] bool exceeds_memory(Pipe& p, const FrameEvent& ev, std::uint64_t memory);
  void on_discarded_byte(Pipe& p, std::uint8_t first);
  void reject_falls_back(Pipe& p);
  void log_oversized(const Pipe& p, std::uint64_t size, std::uint64_t limit, OversizeAction action);
  [[gnu::cold]] void refuse_client(CloseReason reason, ErrorKind kind, std::uint8_t seq,
                                   const ErrContext& ctx);
  bool response_outstanding() const;
  [[gnu::cold]] void finish_refusal();
  void finish_reject(Pipe& p, std::uint64_t size);
  bool discard_inner(Pipe& p, const FrameEvent& ev);
  void go_opaque(Pipe& from);
  void take_raw(Pipe& p);
  void watch_tls(const Pipe& p, std::span<const std::uint8_t> bytes);
  void go_compressed();
  void scan_compressed(Pipe& p, std::size_t from);
  void on_inner_packet(Pipe& p, std::uint64_t length);
  bool framing_at_boundary(const Pipe& p) const;
  [[gnu::hot]] void track_read_deadline(Pipe& p);
  std::vector<std::uint8_t> error_packet(ErrorKind kind, std::uint8_t seq, const ErrContext& ctx);
  bool scan_client_start(Pipe& p);
  [[gnu::cold]] bool oversized(Pipe& p, const FrameEvent& ev, std::uint64_t limit);
  [[gnu::hot]] void command_completed();
  [[gnu::hot]] void on_tracker_step(ResponseTracker::Step step);

  Worker& worker_;
  std::size_t listener_;
  const ListenerConfig* cfg_;
  const ErrorTable* errors_;
  ListenerStats& stats_;
  Io io_;

  int client_fd_;
  int server_fd_ = -1;

  // Read or written on every wakeup, so kept in as few cache lines as possible.
  PollSlot client_slot_;
  PollSlot server_slot_;  // each upstream attempt's socket in turn
  std::multimap<std::uint64_t, Session*>::iterator
      deadline_;                 // in the worker's queue, if timer_due_
  std::uint64_t timer_due_ = 0;  // when the timer fires (ms), 0 = stopped
  std::uint64_t idle_deadline_ = 0;
  std::uint64_t handshake_deadline_ = 0;
  std::uint64_t connect_deadline_ = 0;
  std::uint64_t linger_deadline_ = 0;  // closing, or waiting for the server after the client's FIN
  Phase phase_ = Phase::kConnecting;
  // Sequence id the next frame of the exchange should carry (either direction).
  std::uint8_t next_seq_ = 0;
  // Sequence id the client expects on the next packet it receives.
  std::uint8_t client_expects_ = 0;
  // The client's current command was sent while earlier responses were still
  // to come: its frames are counted by pipelined_next_, not next_seq_.
  bool client_pipelining_ = false;
  std::uint8_t pipelined_next_ = 0;
  bool auth_waiting_client_ = false;  // the server asked the client for more auth data
  bool server_resyncs_ = false;       // a client frame was out of order: the reply's seq is free
  // A pipelined frame was out of order: server_resyncs_ once this many
  // responses before its command have completed (at most 64).
  std::uint8_t resync_after_ = 0;
  bool client_started_ = false;      // the client's first bytes were examined
  bool pre_greeting_done_ = false;   // a PROXY header was read; the client must now wait
  bool close_when_flushed_ = false;  // drain: close once the last response is written
  bool tracker_lost_counted_ = false;
  bool compressed_ = false;  // compressed framing is on
  bool draining_ = false;
  bool quit_sent_ = false;  // the client sent COM_QUIT: any close now is its own
  // Client bytes not yet framed: the commands after the tracker's 64th
  // outstanding one wait here, and the client is not read, until a response
  // completes (see Session::scan).
  std::size_t held_commands_ = 0;
  // The client finished sending (its FIN or a reset came) while commands were
  // held: they go on untracked, as a server reads them on a direct connection.
  bool client_done_ = false;
  // The PROXY header's length: it starts the client's first block, which is
  // kept until the greeting so a failover can send it again.
  std::uint32_t proxy_header_len_ = 0;
  // Bytes sluice itself sends the client (an ERR), after s2c's whole packets.
  std::size_t to_client_sent_ = 0;
  std::vector<std::uint8_t> to_client_;
  // A client packet refused while the response to an earlier command was
  // still on its way: the client gets that response first, then this ERR and
  // the close (see Session::refuse_client). Set, the session forwards nothing
  // more from the client.
  struct Refusal {
    CloseReason reason;
    ErrorKind kind;
    std::uint8_t seq;
    std::uint64_t size;
    std::uint64_t limit;
  };
  std::optional<Refusal> refusal_;
  // TLS pass-through until the handshake is seen to end (see watch_tls):
  // the record headers each way.
  struct TlsWatch {
    TlsRecordWalker client;
    TlsRecordWalker server;
    bool client_sent_data = false;  // the client's first application_data record came
  };
  std::unique_ptr<TlsWatch> tls_watch_;
  Pipe c2s_{Direction::kClientToServer};
  Pipe s2c_{Direction::kServerToClient};
  ResponseTracker tracker_;

  // The first bytes of the server packet that is streaming, for the tracker
  // when it ends (they have gone out by then).
  std::array<std::uint8_t, kTrackedPrefix> stream_prefix_{};
  std::size_t stream_prefix_len_ = 0;
  std::uint64_t server_caps_ = 0;
  bool compress_requested_ = false;       // zlib compression negotiated: framed after the OK
  bool zstd_requested_ = false;           // zstd compression negotiated: opaque after the OK
  std::uint8_t comp_client_expects_ = 0;  // compressed-frame seq the client expects next
  bool counted_active_ = false;           // counted in sluice_connections_active
  bool close_logged_ = false;             // the session_close line is written
  bool holds_slot_ = true;                // holds a max_connections slot (taken at accept)
  bool reset_client_ = false;             // close the client with a reset (it stopped reading)
  bool reset_server_ = false;             // likewise the upstream
  bool server_shut_ = false;              // the client's FIN was passed on (shutdown SHUT_WR)
  bool greeting_seen_ = false;

  // Upstream attempts.
  std::size_t attempts_ = 0;
  std::size_t upstream_index_ = 0;
  std::uint64_t connect_started_ns_ = 0;

  // For the close log.
  std::string client_addr_;
  std::string upstream_addr_;
  std::string user_;
  std::string database_;
  std::uint32_t connection_id_ = 0;  // the server's thread id (SHOW PROCESSLIST, KILL)
  std::uint64_t started_ms_ = 0;
  CloseReason reason_ = CloseReason::kClientQuit;
};

}  // namespace sluice
