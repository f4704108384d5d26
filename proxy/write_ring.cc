// One thread's io_uring, used for one thing: sending a wakeup's socket writes in one system call.
#include "proxy/write_ring.h"

#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>

namespace sluice {
namespace {

int ring_setup(unsigned entries, io_uring_params* p) {
  return static_cast<int>(::syscall(SYS_io_uring_setup, entries, p));
}

int ring_enter(int fd, unsigned submit, unsigned wait) {
  return static_cast<int>(
      ::syscall(SYS_io_uring_enter, fd, submit, wait, IORING_ENTER_GETEVENTS, nullptr, 0));
}

template <typename T>
T* at(void* base, std::uint32_t offset) {
  return reinterpret_cast<T*>(static_cast<char*>(base) + offset);
}

unsigned load_acquire(const unsigned* p) {
  return std::atomic_ref<const unsigned>(*p).load(std::memory_order_acquire);
}
void store_release(unsigned* p, unsigned v) {
  std::atomic_ref<unsigned>(*p).store(v, std::memory_order_release);
}

}  // namespace

WriteRing::WriteRing(unsigned entries) {
  io_uring_params p{};
  // The cheapest mode first (Linux 6.1+), then what older kernels have.
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL;
  int fd = ring_setup(entries, &p);
  if (fd < 0 && errno == EINVAL) {
    p = io_uring_params{};
    p.flags = IORING_SETUP_SUBMIT_ALL;
    fd = ring_setup(entries, &p);
  }
  // Without SINGLE_MMAP (before 5.4) or NODROP (before 5.5) the rings need
  // handling that is not worth it: write one by one there.
  if (fd < 0) return;
  if (!(p.features & IORING_FEAT_SINGLE_MMAP) || !(p.features & IORING_FEAT_NODROP)) {
    ::close(fd);
    return;
  }
  ring_fd_ = fd;
  entries_ = p.sq_entries;
  sq_map_len_ = std::max(p.sq_off.array + p.sq_entries * sizeof(unsigned),
                         p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe));
  sq_map_ = ::mmap(nullptr, sq_map_len_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                   IORING_OFF_SQ_RING);
  sqes_len_ = p.sq_entries * sizeof(io_uring_sqe);
  void* sqes = ::mmap(nullptr, sqes_len_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                      IORING_OFF_SQES);
  if (sq_map_ == MAP_FAILED || sqes == MAP_FAILED) {
    if (sq_map_ == MAP_FAILED) sq_map_ = nullptr;
    if (sqes != MAP_FAILED) ::munmap(sqes, sqes_len_);
    shut();
    return;
  }
  cq_map_ = sq_map_;
  sqes_ = static_cast<io_uring_sqe*>(sqes);
  sq_tail_ = at<unsigned>(sq_map_, p.sq_off.tail);
  sq_mask_ = *at<unsigned>(sq_map_, p.sq_off.ring_mask);
  sq_array_ = at<unsigned>(sq_map_, p.sq_off.array);
  cq_head_ = at<unsigned>(cq_map_, p.cq_off.head);
  cq_tail_ = at<unsigned>(cq_map_, p.cq_off.tail);
  cq_mask_ = *at<unsigned>(cq_map_, p.cq_off.ring_mask);
  cqes_ = at<io_uring_cqe>(cq_map_, p.cq_off.cqes);
  msgs_.resize(entries_);
}

WriteRing::~WriteRing() {
  shut();
}

void WriteRing::shut() {
  if (sqes_ != nullptr) ::munmap(sqes_, sqes_len_);
  if (sq_map_ != nullptr) ::munmap(sq_map_, sq_map_len_);
  sqes_ = nullptr;
  sq_map_ = cq_map_ = nullptr;
  if (ring_fd_ >= 0) ::close(ring_fd_);
  ring_fd_ = -1;
}

bool WriteRing::send(WriteOp* ops, std::size_t n) {
  for (std::size_t i = 0; i < n; i += entries_) {
    const std::size_t chunk = std::min<std::size_t>(entries_, n - i);
    if (!ok() || !send_chunk(ops + i, chunk)) return false;
  }
  return true;
}

bool WriteRing::send_chunk(WriteOp* ops, std::size_t n) {
  unsigned tail = *sq_tail_;  // only this thread writes it
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned slot = tail & sq_mask_;
    io_uring_sqe& e = sqes_[slot];
    std::memset(&e, 0, sizeof e);
    e.fd = ops[i].fd;
    e.msg_flags = MSG_DONTWAIT | MSG_NOSIGNAL;
    if (ops[i].count == 1 && ops[i].iov[0].iov_len <= UINT32_MAX) {
      // One buffer (nearly every write): send, which skips copying a msghdr.
      e.opcode = IORING_OP_SEND;
      e.addr = reinterpret_cast<std::uintptr_t>(ops[i].iov[0].iov_base);
      e.len = static_cast<std::uint32_t>(ops[i].iov[0].iov_len);
    } else {
      msghdr& m = msgs_[i];
      m = msghdr{};
      m.msg_iov = ops[i].iov;
      m.msg_iovlen = static_cast<std::size_t>(ops[i].count);
      e.opcode = IORING_OP_SENDMSG;
      e.addr = reinterpret_cast<std::uintptr_t>(&m);
      e.len = 1;
    }
    e.user_data = i;
    sq_array_[slot] = slot;
    ops[i].made = false;
    ++tail;
  }
  store_release(sq_tail_, tail);
  // Submit all, and wait for all: each completes inside the call (the
  // sockets never block), so the wait returns at once.
  int submitted = -1;
  do {
    submitted = ring_enter(ring_fd_, static_cast<unsigned>(n), static_cast<unsigned>(n));
  } while (submitted < 0 && errno == EINTR);
  if (submitted <= 0) {
    shut();  // none was made: the caller makes them
    return false;
  }
  const auto made = static_cast<std::size_t>(submitted);
  // The kernel takes submissions in order: the first `made` went out. One
  // without a completion (see below) counts as failed with EIO, never as
  // not made: its bytes may have gone.
  for (std::size_t i = 0; i < made; ++i) {
    ops[i].made = true;
    ops[i].ret = -1;
    ops[i].error = EIO;
  }
  std::size_t done = 0;
  bool healthy = made == n;
  while (done < made) {
    unsigned head = *cq_head_;
    const unsigned ready = load_acquire(cq_tail_);
    for (; head != ready; ++head) {
      const io_uring_cqe& c = cqes_[head & cq_mask_];
      WriteOp& op = ops[c.user_data];
      op.ret = c.res >= 0 ? c.res : -1;
      op.error = c.res >= 0 ? 0 : -c.res;
      ++done;
    }
    store_release(cq_head_, head);
    if (done < made && ring_enter(ring_fd_, 0, static_cast<unsigned>(made - done)) < 0 &&
        errno != EINTR) {
      // Writes made without a completion keep their EIO: the caller must not
      // repeat bytes that may have gone out.
      healthy = false;
      break;
    }
  }
  if (healthy) return true;
  // The kernel took only some (out of memory, a ring in a bad state): the
  // rest must never run later, so the ring goes, and the caller makes them.
  shut();
  return false;
}

}  // namespace sluice
