// The server log's two formats (`offload serve --log-format`): text lines for people,
// or JSON lines for a log pipeline (Loki, Elasticsearch, CloudWatch), one object per
// line with the time, the level and the message.
#pragma once

#include <string_view>

namespace offload {

// "text" or "json"; returns false (and changes nothing) for another name.
bool SetLogFormat(std::string_view format);

// Makes the default logger write to stderr through a buffer, so that a server
// finishing tens of thousands of jobs a second (a line each) spends no syscall per
// line on the threads that run them or commit their writes. Warnings and errors are
// written out at once, the rest within a second (spdlog's flusher thread) or at an
// explicit flush; the buffer is written out at exit.
void UseBufferedStderrLog();

}  // namespace offload
