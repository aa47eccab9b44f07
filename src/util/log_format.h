// The server log's two formats (`offload serve --log-format`): text lines for people,
// or JSON lines for a log pipeline (Loki, Elasticsearch, CloudWatch), one object per
// line with the time, the level and the message.
#pragma once

#include <string_view>

namespace offload {

// "text" or "json"; returns false (and changes nothing) for another name.
bool SetLogFormat(std::string_view format);

}  // namespace offload
