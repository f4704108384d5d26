// One direction's byte buffer, with cursors that separate sent, complete and partial packets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

namespace sluice {

// A free list of equal-sized blocks, so an exchange of small packets costs no
// malloc: sessions hold a buffer only while bytes are in flight and hand it
// back here when it drains, which keeps idle sessions small.
class BufferPool {
 public:
  BufferPool(std::size_t block_size, std::size_t max_free)
      : block_size_(block_size), max_free_(max_free) {}
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  std::size_t block_size() const { return block_size_; }
  // A block of block_size() bytes, or nullptr when memory is exhausted.
  std::uint8_t* acquire();
  // Takes back a block of block_size() bytes.
  void release(std::uint8_t* block);

 private:
  std::size_t block_size_;
  std::size_t max_free_;
  std::vector<std::uint8_t*> free_;
};

// A block's memory: malloc'd (mapped == 0: pool blocks, small packets), or
// an mmap'd region of `mapped` bytes of address space (large packets).
struct BufferBlock {
  std::uint8_t* data = nullptr;
  std::size_t capacity = 0;  // usable bytes
  std::size_t mapped = 0;
};
// Frees a block's memory however it was allocated.
void free_block(std::uint8_t* data, std::size_t mapped);

// Large packets (kMappedMin or more) get buffers of their own mapping: aligned
// to 2 MiB and marked for transparent huge pages, so the kernel's copy into
// and out of them walks one page table entry per 2 MiB instead of per 4 KiB
// (after every system call on machines whose kernel flushes the TLB on entry,
// 512 times fewer misses), and with address space for the whole packet from
// the start, so growing it frame by frame never moves the bytes held.
inline constexpr std::size_t kMappedMin = 1u << 20;

// Layout (offsets into data_), the invariant checked by sane():
//
//   0 ........ sent_ ........ complete_ ........ received_ ........ capacity_
//   | written  | whole packets | the packet being | free space to   |
//   |          | awaiting write| read (partial)   | read into       |
//
// Only [sent_, complete_) is ever handed to writev: whole logical packets.
// [complete_, received_) is the start of the next packet; the framer has
// already walked it, so the buffer never re-scans a byte.
class PacketBuffer {
 public:
  PacketBuffer() = default;
  ~PacketBuffer() { free_block(data_, mapped_); }
  PacketBuffer(const PacketBuffer&) = delete;
  PacketBuffer& operator=(const PacketBuffer&) = delete;

  bool allocated() const { return data_ != nullptr; }
  std::size_t capacity() const { return capacity_; }
  std::uint8_t* data() { return data_; }
  const std::uint8_t* data() const { return data_; }
  std::size_t sent() const { return sent_; }
  std::size_t complete() const { return complete_; }
  std::size_t received() const { return received_; }

  // Whole packets not yet written.
  std::size_t pending() const { return complete_ - sent_; }
  // Bytes of the partial packet at the end.
  std::size_t partial() const { return received_ - complete_; }
  // Nothing held at all.
  bool empty() const { return sent_ == received_; }
  // Room to read into.
  std::span<std::uint8_t> tail() { return {data_ + received_, capacity_ - received_}; }

  void on_received(std::size_t n) { received_ += n; }
  // Everything before `offset` forms whole packets.
  void set_complete(std::size_t offset) { complete_ = offset; }
  void on_sent(std::size_t n);
  // Forgets the partial packet (used while discarding an oversized one).
  void drop_partial() { received_ = complete_; }
  // Forgets [complete_, upto): a discarded packet that ended at `upto`; the
  // bytes after it (the start of the next packet) move down to complete_.
  void erase_partial(std::size_t upto);

  // Takes an empty block from a pool. Precondition: !allocated().
  void adopt(std::uint8_t* block, std::size_t size);
  // Gives the block back when it is pool-sized and empty; returns true if so.
  bool give_back(BufferPool& pool);
  // Moves the unsent bytes to the front when that frees room.
  void compact();
  // Grows the block to at least `capacity` bytes (keeping contents). A block
  // of kMappedMin or more is mapped with address space for `expected` bytes
  // (the most the packet may need), so growth up to that moves nothing.
  // Returns false when memory is exhausted; the buffer is then unchanged.
  [[nodiscard]] bool grow(std::size_t capacity, std::size_t expected = 0);
  // Frees the block (contents are lost).
  void reset();
  // Hands the (empty) block over to the caller. Precondition: empty().
  BufferBlock detach();
  // Moves the unsent bytes to the front of `block` (its capacity at least
  // received() - sent()) and adopts it; returns the old, malloc'd block,
  // which the caller disposes of.
  std::uint8_t* replace_block(const BufferBlock& block);

  bool sane() const {
    return sent_ <= complete_ && complete_ <= received_ && received_ <= capacity_ &&
           (data_ != nullptr || capacity_ == 0);
  }

 private:
  void prefault(std::size_t from);

  std::uint8_t* data_ = nullptr;
  std::size_t capacity_ = 0;
  std::size_t mapped_ = 0;  // address space of a mapped block; 0: malloc'd
  std::size_t sent_ = 0;
  std::size_t complete_ = 0;
  std::size_t received_ = 0;
};

}  // namespace sluice
