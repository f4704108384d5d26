// The global memory_limit: every packet byte sluice holds is reserved here first.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <utility>
#include <vector>

namespace sluice {

// Shared by all workers. Reservations that fit go through a lock-free fast
// path; one that does not fit takes a ticket and waits its turn, so waiting
// packets proceed in arrival order instead of starving each other.
//
// Multi-frame packets (logical packets of 16 MiB or more) grow frame by frame
// and cannot know their final size, so two of them could each hold half the
// budget and wait for the other forever. A multi-frame packet therefore grows
// only with a "large turn", and turns are handed out while the packets'
// claims (the most each can grow to: the packet limit of its direction) fit
// the budget together, so growing packets never wait for each other forever.
// With the defaults (64M packets, 1G budget) sixteen grow at once; a claim
// that does not fit beside others still gets a turn alone. Single-frame
// packets reserve their exact size at their header and never need more, so
// they cannot deadlock with anyone.
class MemoryBudget {
 public:
  using Ticket = std::uint64_t;  // 0 = none

  // The budget caps packet payload bytes; buffers also hold frame headers and
  // the start of the next packet, so reservations may pass the limit by this
  // much (a packet of memory_limit - 1 payload bytes must still fit).
  static constexpr std::uint64_t kSlack = 64 << 10;

  // Reservations of at most `small` bytes (a read block, a streaming chunk)
  // go ahead of the queue when they fit: they keep sessions moving (a server
  // whose row is read goes on to read the client packets that hold memory),
  // and the large packet at the queue's head needs what those free, not the
  // little a block holds.
  explicit MemoryBudget(std::uint64_t limit, std::uint64_t small = 0)
      : limit_(limit), small_(small) {}

  std::uint64_t limit() const { return limit_.load(std::memory_order_relaxed); }
  void set_limit(std::uint64_t limit) { limit_.store(limit, std::memory_order_relaxed); }
  std::uint64_t used() const { return used_.load(std::memory_order_relaxed); }
  // Whether `n` more bytes would fit right now (the slack included).
  bool fits(std::uint64_t n) const { return used() + n <= limit() + kSlack; }
  std::uint64_t waits() const { return waits_.load(std::memory_order_relaxed); }
  // Someone is queued for memory right now.
  bool has_waiters() const { return queued_.load(std::memory_order_relaxed); }
  // Reserved bytes that belong to kept, empty buffers (SpareBuffer), and
  // what is left for packets: sluice_buffered_bytes.
  void add_spare(std::uint64_t n) { spare_.fetch_add(n, std::memory_order_relaxed); }
  void remove_spare(std::uint64_t n) { spare_.fetch_sub(n, std::memory_order_relaxed); }
  std::uint64_t packet_bytes() const {
    const std::uint64_t used = used_.load(std::memory_order_relaxed);
    const std::uint64_t spare = spare_.load(std::memory_order_relaxed);
    return used > spare ? used - spare : 0;
  }

  // Reserves `n` bytes. `ticket` is the caller's place in the queue (0 if it
  // has none): on failure the caller gets one and must call again later
  // (or cancel). Returns true when reserved (the ticket is then cleared).
  [[nodiscard]] bool reserve(std::uint64_t n, Ticket* ticket);
  void release(std::uint64_t n) { used_.fetch_sub(n, std::memory_order_relaxed); }
  // Counts a read paused for a reason other than a failed reserve().
  void note_wait() { waits_.fetch_add(1, std::memory_order_relaxed); }
  // Leaves the queue (a session closing while it waits).
  void cancel(Ticket* ticket);

  // A large turn for `owner`, whose packet may grow to `claim` bytes: true if
  // it holds one, or one was free and is now taken.
  [[nodiscard]] bool acquire_large_turn(const void* owner, std::uint64_t claim);
  void release_large_turn(const void* owner);

 private:
  bool try_add(std::uint64_t n);
  void take_ticket(Ticket* ticket);

  std::atomic<std::uint64_t> limit_;
  const std::uint64_t small_;
  std::atomic<std::uint64_t> used_{0};
  std::atomic<std::uint64_t> waits_{0};
  std::atomic<std::uint64_t> spare_{0};
  std::atomic<bool> queued_{false};  // fast-path hint: someone is waiting
  std::mutex mu_;
  std::deque<Ticket> queue_;  // guarded by mu_
  Ticket next_ticket_ = 1;    // guarded by mu_
  // Holders of a large turn and their claims; guarded by mu_.
  std::vector<std::pair<const void*, std::uint64_t>> large_;
  std::uint64_t large_claims_ = 0;  // guarded by mu_
};

}  // namespace sluice
