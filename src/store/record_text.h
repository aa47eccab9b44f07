// How the structured fields of a JobRecord are kept in a SQL store's text columns: as
// JSON, so that a column stays readable with the database's own tools. SqliteStore and
// PostgresStore write the same text, so a row reads the same in both.
//
// Each *ToText returns an empty string for an empty value (stored as NULL). Each
// *FromText reads what this offload wrote; text it did not write (malformed, of the
// wrong shape) reads as what could be read, never as an error, so that one bad row
// does not make a job unreadable.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/job_record.h"

namespace offload {

// [{"type","message"}...], oldest first.
std::string HistoryToText(const std::vector<JobError>& history);
std::vector<JobError> HistoryFromText(std::string_view text);

// {"chunk":K,"on_error":"collect"|"fail_fast","failed_index":I}. Text that cannot be
// read still marks the job a map parent: unreadable fields keep their defaults.
std::string MapSpecToText(const std::optional<MapSpec>& map);
MapSpec MapSpecFromText(std::string_view text);

// [{"field","filename","content_type","size","sha256"}...], in order.
std::string FilesToText(const std::vector<JobFile>& files);
std::vector<JobFile> FilesFromText(std::string_view text);

// {"size","sha256"} of a result kept in a file. Its path stays empty: files live under
// files_dir, which the store does not know.
std::string ResultFileToText(const OutputFile& file);
OutputFile ResultFileFromText(std::string_view text);

}  // namespace offload
