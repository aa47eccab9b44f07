// ResponseBody: the Beast body type of every response the server sends.
//
// A body either owns a string built for this one response (JSON, a problem) or
// shares bytes that already exist and never change: a job's binary result, held
// once by the job's Output and referenced by every response that sends it. Without
// this, 500 clients fetching one 5 MB result held 500 copies (2.5 GB) for as long as
// they took to read them; now they hold 500 reference counts.
//
// Threads: a value is used by one session at a time; the shared bytes are immutable,
// so any number of sessions on any threads may send them at once.
#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/optional.hpp>
#include <boost/system/error_code.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace offload {

struct ResponseBody {
  class value_type {
   public:
    value_type() = default;
    // An owned body: `res.body() = WriteJson(v);` reads as with string_body.
    value_type& operator=(std::string text) {
      owned_ = std::move(text);
      shared_.reset();
      return *this;
    }
    // Sends `bytes` without copying them.
    // REQUIRES: nobody modifies *bytes while any response shares it.
    void Share(std::shared_ptr<const std::string> bytes) {
      owned_.clear();
      shared_ = std::move(bytes);
    }

    std::string_view view() const { return shared_ ? std::string_view(*shared_) : std::string_view(owned_); }
    std::size_t size() const { return view().size(); }
    bool empty() const { return size() == 0; }

   private:
    std::string owned_;
    std::shared_ptr<const std::string> shared_;
  };

  // Lets prepare_payload() set Content-Length.
  static std::uint64_t size(const value_type& body) { return body.size(); }

  // Hands the serializer the whole body as one buffer, as string_body does.
  class writer {
   public:
    using const_buffers_type = boost::asio::const_buffer;

    template <bool isRequest, class Fields>
    writer(const boost::beast::http::header<isRequest, Fields>&, const value_type& body) : body_(body) {}

    void init(boost::system::error_code& ec) { ec = {}; }

    boost::optional<std::pair<const_buffers_type, bool>> get(boost::system::error_code& ec) {
      ec = {};
      const std::string_view bytes = body_.view();
      return {{const_buffers_type(bytes.data(), bytes.size()), false}};
    }

   private:
    const value_type& body_;
  };
};

}  // namespace offload
