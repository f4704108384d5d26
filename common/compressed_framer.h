// Incremental parser of the compressed protocol: outer 7-byte frames, and the MySQL packets inside
// them.
#pragma once

#include <zlib.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/framer.h"

namespace sluice {

// The compressed protocol wraps the ordinary packet stream in frames of
// [3-byte compressed length][seq][3-byte uncompressed length] + payload,
// where an uncompressed length of 0 means the payload is stored as is. Inner
// packets may span frames, and a frame may hold several of them.
//
// This walks both layers. It inflates each frame's payload through a small
// scratch buffer only to see the inner headers and the first bytes of each
// inner packet; the caller's buffer keeps the compressed bytes, which are what
// gets forwarded. Like Framer it never throws and never over-reads.
//
// An idle compressed session should cost what a plain one does, so the
// framer owns neither its scratch nor, between frames, any zlib state: both
// come from a Workspace its owner shares between framers (a worker's, for
// all its sessions). Each frame is a zlib stream of its own, so an inflate
// stream is only needed while a deflated frame is open.
class CompressedFramer {
 public:
  static constexpr std::size_t kOuterHeader = 7;
  static constexpr std::size_t kPrefix = 64;  // bytes of each inner packet kept for the tracker
  static constexpr std::size_t kScratch = 16384;

  // What framers that are never walked at the same time share: next() is
  // called until it needs more input and !has_pending() before another
  // framer's next() (and an abandoned framer's never again).
  class Workspace {
   public:
    // Keeps up to `keep` idle inflate streams (about 40 KiB each, zlib's
    // state and window): setting one up and freeing it for every frame
    // would cost more than inflating a small one.
    explicit Workspace(std::size_t keep = 8) : keep_(keep) {}
    ~Workspace();
    Workspace(const Workspace&) = delete;
    Workspace& operator=(const Workspace&) = delete;
    // A stream ready for a new zlib stream; nullptr if zlib could not set one up.
    z_stream* take();
    void give_back(z_stream* z);
    std::array<std::uint8_t, kScratch> scratch{};

   private:
    std::size_t keep_;
    std::vector<z_stream*> idle_;
  };

  struct Event {
    enum class Kind : std::uint8_t {
      kNeedMore,     // input consumed (maybe none); call again with more
      kOuterHeader,  // a frame header completed
      kOuterEnd,     // a frame (header + payload) completed
      kInner,        // an inner frame event: see `inner`
      kError,        // corrupt compressed data: the stream cannot be followed
    };
    Kind kind = Kind::kNeedMore;
    std::size_t consumed = 0;         // bytes of the caller's input consumed
    std::uint32_t comp_length = 0;    // kOuterHeader
    std::uint32_t uncomp_length = 0;  // kOuterHeader
    std::uint8_t comp_seq = 0;        // kOuterHeader
    FrameEvent inner;                 // kInner: kHeader or kPacketEnd of an inner packet
  };

  explicit CompressedFramer(Workspace& workspace) : workspace_(workspace) {}
  ~CompressedFramer();
  CompressedFramer(const CompressedFramer&) = delete;
  CompressedFramer& operator=(const CompressedFramer&) = delete;

  Event next(const std::uint8_t* data, std::size_t len);

  // Inflated bytes or a frame end are still to be reported: call next() again
  // even with no new input.
  bool has_pending() const {
    return scratch_pos_ < scratch_len_ || inner_.end_pending() || draining_ ||
           (frame_open_ && outer_left_ == 0);
  }
  // The inner stream is between packets (a frame ending here may be forwarded).
  bool inner_at_boundary() const { return inner_.at_boundary(); }
  // Between frames: no outer header or payload byte is pending, and the last
  // frame's end has been reported (nothing of it is left in the scratch).
  bool outer_at_boundary() const {
    return header_have_ == 0 && outer_left_ == 0 && !draining_ && !frame_open_;
  }
  // Compressed payload bytes of the current frame not yet consumed.
  std::uint32_t outer_left() const { return outer_left_; }
  std::size_t header_have() const { return header_have_; }
  // The first bytes of the latest inner packet (valid at its kPacketEnd).
  const std::uint8_t* prefix() const { return prefix_.data(); }
  std::size_t prefix_length() const { return prefix_len_; }
  const Framer& inner() const { return inner_; }

 private:
  Event step_scratch();
  Event step_payload(const std::uint8_t* data, std::size_t len);
  Event step_header(const std::uint8_t* data, std::size_t len);
  Event finish_frame();
  void end_inflate();

  std::array<std::uint8_t, kOuterHeader> header_{};
  std::size_t header_have_ = 0;
  std::uint32_t outer_left_ = 0;   // compressed bytes still to consume
  std::uint32_t uncomp_left_ = 0;  // inflated bytes still expected for this frame
  bool compressed_ = false;        // this frame's payload is deflated
  bool draining_ = false;          // input done, inflate may still have output
  bool stream_ended_ = false;      // this frame's deflate stream has ended
  bool frame_open_ = false;        // a header was read and kOuterEnd is owed
  Workspace& workspace_;
  z_stream* z_ = nullptr;  // lent by the workspace while a deflated frame is open
  std::size_t scratch_pos_ = 0;
  std::size_t scratch_len_ = 0;
  Framer inner_;
  std::array<std::uint8_t, kPrefix> prefix_{};
  std::size_t prefix_len_ = 0;
};

}  // namespace sluice
