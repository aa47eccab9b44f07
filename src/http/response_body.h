// ResponseBody: the Beast body type of every response the server sends.
//
// A body either owns a string built for this one response (JSON, a problem), shares
// bytes that already exist and never change (a job's binary result, held once by the
// job's Output and referenced by every response that sends it: 500 clients fetching
// one 5 MB result hold 500 reference counts, not 2.5 GB), or streams a range of a
// file (a result kept on disk) through one 64 KiB buffer, so that a download of any
// size costs the same memory. A body may also stand for bytes it does not send: the
// answer to HEAD carries the Content-Length of what GET would send.
//
// Threads: a value is used by one session at a time; the shared bytes are immutable,
// so any number of sessions on any threads may send them at once.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/optional.hpp>
#include <boost/system/error_code.hpp>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace offload {

// A file open for reading; closed when the last body sending it is gone.
class OpenFile {
 public:
  explicit OpenFile(int fd) : fd_(fd) {}
  ~OpenFile() { ::close(fd_); }
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

struct ResponseBody {
  class value_type {
   public:
    value_type() = default;
    // An owned body: `res.body() = WriteJson(v);` reads as with string_body.
    value_type& operator=(std::string text) {
      owned_ = std::move(text);
      shared_.reset();
      file_.reset();
      return *this;
    }
    // Sends `bytes` without copying them.
    // REQUIRES: nobody modifies *bytes while any response shares it.
    void Share(std::shared_ptr<const std::string> bytes) {
      owned_.clear();
      shared_ = std::move(bytes);
    }
    // Sends `length` bytes of `file` from `offset`, read as the socket takes them.
    void Stream(std::shared_ptr<const OpenFile> file, std::uint64_t offset, std::uint64_t length) {
      owned_.clear();
      shared_.reset();
      file_ = std::move(file);
      offset_ = offset;
      length_ = length;
    }
    // Of what is set, only the size is kept: the answer to HEAD.
    void KeepSizeOnly() {
      head_size_ = size();
      owned_.clear();
      shared_.reset();
      file_.reset();
    }
    // Sends the bytes in [first, first + length) of what is set. REQUIRES: the range
    // is within size().
    void Slice(std::uint64_t first, std::uint64_t length) {
      if (file_) {
        offset_ += first;
        length_ = length;
      } else {
        slice_first_ = first;
        slice_length_ = length;
      }
    }

    // The bytes held in memory (none for a file or HEAD).
    std::string_view view() const {
      std::string_view all = shared_ ? std::string_view(*shared_) : std::string_view(owned_);
      if (slice_length_) return all.substr(slice_first_, *slice_length_);
      return all;
    }
    std::uint64_t size() const {
      if (head_size_) return *head_size_;
      return file_ ? length_ : view().size();
    }
    bool empty() const { return size() == 0; }

   private:
    friend struct ResponseBody;
    std::string owned_;
    std::shared_ptr<const std::string> shared_;
    std::shared_ptr<const OpenFile> file_;
    std::uint64_t offset_ = 0;
    std::uint64_t length_ = 0;
    std::size_t slice_first_ = 0;
    std::optional<std::size_t> slice_length_;
    std::optional<std::uint64_t> head_size_;
  };

  // Lets prepare_payload() set Content-Length.
  static std::uint64_t size(const value_type& body) { return body.size(); }

  // Hands the serializer the bytes in memory as one buffer, as string_body does, or
  // a file's range a buffer at a time.
  class writer {
   public:
    using const_buffers_type = boost::asio::const_buffer;

    template <bool isRequest, class Fields>
    writer(const boost::beast::http::header<isRequest, Fields>&, const value_type& body) : body_(body) {}

    void init(boost::system::error_code& ec) {
      ec = {};
      at_ = body_.offset_;
      left_ = body_.head_size_ ? 0 : body_.length_;
    }

    boost::optional<std::pair<const_buffers_type, bool>> get(boost::system::error_code& ec) {
      ec = {};
      if (body_.head_size_) return boost::none;
      if (!body_.file_) {
        const std::string_view bytes = body_.view();
        return {{const_buffers_type(bytes.data(), bytes.size()), false}};
      }
      if (left_ == 0) return boost::none;
      if (buffer_.empty()) buffer_.resize(kChunk);
      const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(left_, kChunk));
      ssize_t n;
      do {
        n = ::pread(body_.file_->fd(), buffer_.data(), want, static_cast<off_t>(at_));
      } while (n < 0 && errno == EINTR);
      if (n <= 0) {
        // The file shrank or cannot be read: the response cannot be completed, and
        // the connection is dropped (the client sees a short body, not wrong bytes).
        ec = boost::system::error_code(n < 0 ? errno : EIO, boost::system::generic_category());
        return boost::none;
      }
      at_ += static_cast<std::uint64_t>(n);
      left_ -= static_cast<std::uint64_t>(n);
      return {{const_buffers_type(buffer_.data(), static_cast<std::size_t>(n)), left_ > 0}};
    }

   private:
    static constexpr std::size_t kChunk = 64 * 1024;
    const value_type& body_;
    std::string buffer_;
    std::uint64_t at_ = 0;
    std::uint64_t left_ = 0;
  };
};

}  // namespace offload
