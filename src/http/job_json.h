// The JSON codec of the API: job objects out, submit requests in.
#pragma once

#include <boost/json/object.hpp>
#include <string>
#include <string_view>

#include "service/job_service.h"

namespace offload {

// Appends the job object the API sends. With include_result false the "result" member
// is left out (result_type and result_url stay): what a listing sends unless asked for
// ?include=result. The result comes last, written from the job's own value rather
// than copied into an object first (a map's result can hold millions of values).
void AppendJobJson(std::string* out, const JobSnapshot& job, bool include_result = true, bool include_input = false);
boost::json::object TaskToJson(const TaskInfo& task);
boost::json::object ResourceToJson(const ResourceInfo& resource);

// Parses a POST /v1/jobs body: {"task": NAME, "input": ANY, "priority": INT}.
// kMalformed for bad JSON; kInvalidArgument (naming the field) for a wrong shape or a
// number no value can hold (util/json_reader.h: "input.x: the number 1e400 …").
ErrorOr<SubmitRequest> ParseSubmitRequest(std::string_view body);
// The body of POST /v1/tasks/{task}/run: the input of one job, or a map
// ({"map": [...], "chunk": K, "on_error": ...}). Errors as ParseSubmitRequest.
ErrorOr<SubmitRequest> ParseRunRequest(std::string_view task, std::string_view body);

}  // namespace offload
