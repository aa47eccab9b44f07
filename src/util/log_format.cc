#include "util/log_format.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

#include "util/json_writer.h"

namespace offload {

namespace {

// %J: the message as a JSON string, quotes included.
class JsonMessageFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    std::string quoted;
    quoted.reserve(msg.payload.size() + 2);
    AppendJsonString(&quoted, std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(quoted.data(), quoted.data() + quoted.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JsonMessageFlag>(); }
};

// stderr through stdio's buffer: written out on flush, not at every line. (spdlog's
// own stderr sinks flush each line; a file sink on /dev/stderr cannot open a socket,
// which is what stderr is under systemd.)
class BufferedStderrSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  BufferedStderrSink() { std::setvbuf(stderr, nullptr, _IOFBF, 64 * 1024); }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t line;
    formatter_->format(msg, line);
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }
};

}  // namespace

void UseBufferedStderrLog() {
  auto logger = std::make_shared<spdlog::logger>("offload", std::make_shared<BufferedStderrSink>());
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
  spdlog::flush_every(std::chrono::seconds(1));
}

bool SetLogFormat(std::string_view format) {
  if (format == "text") {
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);
    return true;
  }
  if (format == "json") {
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    formatter->add_flag<JsonMessageFlag>('J').set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","msg":%J})");
    spdlog::set_formatter(std::move(formatter));
    return true;
  }
  return false;
}

}  // namespace offload
