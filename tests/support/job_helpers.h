// Helpers for integration tests that speak the job API: submit, wait for a state
// with a deadline (never a bare sleep), read timestamps, check problem bodies.
#pragma once

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "support/http_client.h"

namespace offload::testing {

// POST /v1/jobs; expects 202 and returns the job object (an empty object, with a
// test failure, otherwise).
boost::json::object SubmitJob(HttpClient& client, std::string_view task, boost::json::value input, int priority = 0);

// GET /v1/jobs/{id}; expects 200.
boost::json::object GetJob(HttpClient& client, const std::string& id);

// Long-polls with ?wait= until the job has finished or `deadline` passes; returns
// the last job object seen (a test failure when it has not finished).
boost::json::object WaitFinished(HttpClient& client, const std::string& id,
                                 std::chrono::milliseconds deadline = std::chrono::seconds(30));

// Polls GET /v1/jobs/{id} until its status is `status` or `deadline` passes;
// returns the last job object seen (a test failure when the status never came).
boost::json::object WaitForStatus(HttpClient& client, const std::string& id, std::string_view status,
                                  std::chrono::milliseconds deadline = std::chrono::seconds(10));

// Polls GET /v1/resources until `resource` has `in_use` units in use or `deadline`
// passes (a test failure then).
void WaitForInUse(HttpClient& client, std::string_view resource, std::int64_t in_use,
                  std::chrono::milliseconds deadline = std::chrono::seconds(10));

// A job object's field as a string ("" when absent or not a string).
std::string Field(const boost::json::object& job, std::string_view name);

// created_at / started_at / finished_at in Unix milliseconds; -1 when null, and a
// test failure when it is present but not RFC 3339 with milliseconds.
std::int64_t TimeOf(const boost::json::object& job, std::string_view name);

// Whether `res` is an RFC 9457 problem with HTTP status `status`: content type
// application/problem+json and a body with type, title, status (== `status`) and
// a non-empty detail.
::testing::AssertionResult IsProblem(const Response& res, int status);

// A short description of `res` for assertion messages.
std::string Describe(const Response& res);

}  // namespace offload::testing
