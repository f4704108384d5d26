// Incremental parser of the compressed protocol: outer 7-byte frames, and the MySQL packets inside
// them.
#include "common/compressed_framer.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "common/wire.h"

namespace sluice {

using Kind = CompressedFramer::Event::Kind;

CompressedFramer::Workspace::~Workspace() {
  for (z_stream* z : idle_) {
    inflateEnd(z);
    delete z;
  }
}

z_stream* CompressedFramer::Workspace::take() {
  if (!idle_.empty()) {
    z_stream* z = idle_.back();
    idle_.pop_back();
    return z;
  }
  auto* z = new (std::nothrow) z_stream{};
  if (z != nullptr && inflateInit(z) != Z_OK) {
    delete z;
    return nullptr;
  }
  return z;
}

void CompressedFramer::Workspace::give_back(z_stream* z) {
  if (idle_.size() < keep_ && inflateReset(z) == Z_OK) {
    idle_.push_back(z);
    return;
  }
  inflateEnd(z);
  delete z;
}

CompressedFramer::~CompressedFramer() {
  end_inflate();
}

void CompressedFramer::end_inflate() {
  if (z_ != nullptr) workspace_.give_back(z_);
  z_ = nullptr;
}

CompressedFramer::Event CompressedFramer::next(const std::uint8_t* data, std::size_t len) {
  // An empty inner packet (an empty final frame) ends after its header with
  // no byte left to inflate: it is reported before the frame's end.
  if (scratch_pos_ < scratch_len_ || inner_.end_pending()) return step_scratch();
  if (frame_open_ && outer_left_ == 0 && !draining_) return finish_frame();
  if (draining_) return step_payload(data, 0);
  if (outer_left_ > 0) return step_payload(data, len);
  return step_header(data, len);
}

// Feeds inflated bytes to the inner framer, keeping each packet's first bytes.
CompressedFramer::Event CompressedFramer::step_scratch() {
  Event ev;
  const bool in_payload = inner_.payload_left() > 0;
  const FrameEvent in =
      inner_.next(workspace_.scratch.data() + scratch_pos_, scratch_len_ - scratch_pos_);
  if (in_payload && prefix_len_ < kPrefix) {
    const std::size_t keep = std::min(kPrefix - prefix_len_, in.consumed);
    std::memcpy(prefix_.data() + prefix_len_, workspace_.scratch.data() + scratch_pos_, keep);
    prefix_len_ += keep;
  }
  scratch_pos_ += in.consumed;
  if (in.kind == FrameEvent::Kind::kHeader && in.first_frame) prefix_len_ = 0;
  if (in.kind != FrameEvent::Kind::kNeedMore) {
    ev.kind = Kind::kInner;
    ev.inner = in;
  }
  return ev;
}

CompressedFramer::Event CompressedFramer::step_payload(const std::uint8_t* data, std::size_t len) {
  Event ev;
  const std::size_t take = std::min<std::size_t>(len, outer_left_);
  if (stream_ended_) {
    // Bytes after the deflate stream's end, still inside the frame: inflate
    // would take none of them (and be asked again forever); mysqld's
    // uncompress() ignores them, and so does this.
    outer_left_ -= static_cast<std::uint32_t>(take);
    ev.consumed = take;
    return ev;
  }
  if (!compressed_) {
    // Stored as is: the bytes are the inner stream.
    const std::size_t n = std::min(take, kScratch);
    std::memcpy(workspace_.scratch.data(), data, n);
    scratch_pos_ = 0;
    scratch_len_ = n;
    outer_left_ -= static_cast<std::uint32_t>(n);
    ev.consumed = n;
    return ev;
  }
  z_->next_in = const_cast<Bytef*>(data);
  z_->avail_in = static_cast<uInt>(take);
  z_->next_out = workspace_.scratch.data();
  z_->avail_out = static_cast<uInt>(kScratch);
  const int rc = inflate(z_, Z_NO_FLUSH);
  const std::size_t used = take - z_->avail_in;
  const std::size_t produced = kScratch - z_->avail_out;
  outer_left_ -= static_cast<std::uint32_t>(used);
  ev.consumed = used;
  if ((rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) || produced > uncomp_left_) {
    ev.kind = Kind::kError;
    return ev;
  }
  uncomp_left_ -= static_cast<std::uint32_t>(produced);
  stream_ended_ = rc == Z_STREAM_END;
  scratch_pos_ = 0;
  scratch_len_ = produced;
  // What mysqld's uncompress() accepts: a stream that ends within the
  // frame's bytes, inflating to at most what the header declared (the
  // output's own length is what counts then). All input taken but the
  // stream not ended: zlib may still hold output, or its end; a call that
  // gets neither means the stream is cut short.
  draining_ = outer_left_ == 0 && !stream_ended_;
  if (draining_ && produced == 0 && used == 0) ev.kind = Kind::kError;
  return ev;
}

CompressedFramer::Event CompressedFramer::step_header(const std::uint8_t* data, std::size_t len) {
  Event ev;
  while (ev.consumed < len && header_have_ < kOuterHeader)
    header_[header_have_++] = data[ev.consumed++];
  if (header_have_ < kOuterHeader) return ev;
  header_have_ = 0;
  ev.kind = Kind::kOuterHeader;
  ev.comp_length = wire::le24(header_.data());
  ev.comp_seq = header_[3];
  ev.uncomp_length = wire::le24(header_.data() + 4);
  outer_left_ = ev.comp_length;
  compressed_ = ev.uncomp_length != 0;
  stream_ended_ = false;
  end_inflate();  // a frame that ended in an error left it open
  uncomp_left_ = ev.uncomp_length;
  frame_open_ = true;
  // A deflated frame of no bytes has no stream to end (uncompress() fails on it).
  if (compressed_) {
    z_ = outer_left_ != 0 ? workspace_.take() : nullptr;
    if (z_ == nullptr) ev.kind = Kind::kError;
  }
  return ev;
}

CompressedFramer::Event CompressedFramer::finish_frame() {
  Event ev;
  frame_open_ = false;
  end_inflate();
  ev.kind = Kind::kOuterEnd;
  return ev;
}

}  // namespace sluice
