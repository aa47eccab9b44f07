"""Keeps docs/openapi.json honest.

Two halves. The document alone: valid JSON, OpenAPI 3.1.0, every $ref resolves, every
schema is valid JSON Schema 2020-12, every operation has a unique operationId and a
response, every example validates against the schema beside it, every problem type
the source sends is listed. Then the real server ($OFFLOAD_BIN, else
<repo>/build/src/offload, on 127.0.0.1 port 0 with a memory store): every documented
path and method is routed (no 404 "no resource at ..." nor 405), and what it answers
(status, headers, body) is what the document says for that status.

Python's standard library and Debian's python3-jsonschema only.
"""

import hashlib
import http.client
import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
import uuid
import warnings
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC_PATH = ROOT / "docs" / "openapi.json"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PROBLEM_PREFIX = "urn:offload:problem:"
LISTENING = re.compile(r"offload listening on http://(127\.0\.0\.1):([0-9]+)")
START_TIMEOUT_S = 15
STOP_TIMEOUT_S = 20
HTTP_TIMEOUT_S = 15


def _no_duplicate_keys(pairs):
    keys = [k for k, _ in pairs]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ValueError("duplicate keys in docs/openapi.json: %s" % dupes)
    return dict(pairs)


def load_spec():
    with open(SPEC_PATH, encoding="utf-8") as f:
        return json.load(f, object_pairs_hook=_no_duplicate_keys)


SPEC = load_spec()


# ------------------------------------------------------------------ the document

def pointer(ref):
    """The value a local $ref ("#/a/b") names in SPEC; KeyError when there is none."""
    assert ref.startswith("#/"), "only local references are used: %s" % ref
    node = SPEC
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def resolve(node):
    """An OpenAPI object with its $ref (a Reference Object) followed."""
    seen = set()
    while isinstance(node, dict) and "$ref" in node and set(node) <= {"$ref", "summary", "description"}:
        ref = node["$ref"]
        assert ref not in seen, "reference cycle at %s" % ref
        seen.add(ref)
        node = pointer(ref)
    return node


def walk(node, path=""):
    """Every (json-pointer-ish path, dict) in `node`."""
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from walk(v, path + "/" + str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, path + "/" + str(i))


def operations():
    for template, item in SPEC["paths"].items():
        for method in METHODS:
            if method in item:
                yield template, method, item[method]


_format_checker = getattr(jsonschema.Draft202012Validator, "FORMAT_CHECKER", None) or getattr(
    jsonschema, "draft202012_format_checker", None)


def validator(schema):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # RefResolver, in newer jsonschema
        resolver = jsonschema.RefResolver(base_uri="", referrer=SPEC)
    return jsonschema.Draft202012Validator(schema, resolver=resolver, format_checker=_format_checker)


def validate(instance, schema, what):
    errors = sorted(validator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
    assert not errors, "%s does not match its schema:\n%s\n\n%s" % (
        what, "\n".join("- at %s: %s" % ("/".join(map(str, e.absolute_path)) or "(top)", e.message)
                        for e in errors[:10]),
        json.dumps(instance, indent=1)[:3000])


SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "dependentSchemas")
SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
SUBSCHEMA_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames",
                 "unevaluatedItems", "unevaluatedProperties", "contentSchema")


def subschemas(schema, path):
    """`schema` and every schema inside it, with their paths."""
    if not isinstance(schema, dict):
        return
    yield path, schema
    for k in SUBSCHEMA_MAPS:
        for name, s in schema.get(k, {}).items():
            yield from subschemas(s, "%s/%s/%s" % (path, k, name))
    for k in SUBSCHEMA_LISTS:
        for i, s in enumerate(schema.get(k, [])):
            yield from subschemas(s, "%s/%s/%d" % (path, k, i))
    for k in SUBSCHEMA_ONE:
        if isinstance(schema.get(k), dict):
            yield from subschemas(schema[k], "%s/%s" % (path, k))


def holders():
    """Every object that holds a `schema` beside its examples (media types, parameters,
    headers), with its path."""
    for path, node in walk(SPEC):
        if "/components/schemas" in path:
            continue
        if isinstance(node.get("schema"), (dict, bool)):
            yield path, node


def top_schemas():
    for name, s in SPEC["components"]["schemas"].items():
        yield "#/components/schemas/" + name, s
    for path, node in holders():
        yield "#" + path + "/schema", node["schema"]


def collect_examples():
    """(id, value, schema) for every example in the document."""
    found = []
    for path, node in holders():
        if "example" in node:
            found.append(("#%s/example" % path, node["example"], node["schema"]))
        for name, ex in (node.get("examples") or {}).items():
            ex = resolve(ex)
            if "value" in ex:
                found.append(("#%s/examples/%s" % (path, name), ex["value"], node["schema"]))
    for top, schema in top_schemas():
        for path, s in subschemas(schema, top):
            for i, value in enumerate(s.get("examples", []) if isinstance(s.get("examples"), list) else []):
                found.append(("%s/examples/%d" % (path, i), value, s))
    return found


EXAMPLES = collect_examples()


def test_document_is_openapi_3_1():
    assert SPEC["openapi"] == "3.1.0"
    assert SPEC["info"]["title"] == "offload"
    assert SPEC["servers"] == [{"url": "http://127.0.0.1:8080"}]
    # Written by hand with a 2-space indent, ending in a newline.
    text = SPEC_PATH.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert "\t" not in text
    assert '\n  "openapi": "3.1.0"' in text


def test_info_version_is_the_projects():
    cmake = (ROOT / "CMakeLists.txt").read_text()
    version = re.search(r"project\(offload VERSION ([0-9.]+)", cmake).group(1)
    assert SPEC["info"]["version"] == version


def test_every_ref_resolves():
    refs = [(path, node["$ref"]) for path, node in walk(SPEC) if isinstance(node.get("$ref"), str)]
    assert refs
    broken = []
    for path, ref in refs:
        try:
            pointer(ref)
        except (KeyError, IndexError, ValueError):
            broken.append("%s -> %s" % (path, ref))
    assert not broken, "references that name nothing:\n" + "\n".join(broken)


def test_every_component_is_used():
    used = {node["$ref"] for _, node in walk(SPEC) if isinstance(node.get("$ref"), str)}
    unused = []
    for kind in ("parameters", "headers", "responses", "examples"):
        for name in SPEC["components"].get(kind, {}):
            if "#/components/%s/%s" % (kind, name) not in used:
                unused.append("%s/%s" % (kind, name))
    assert not unused, "components nothing refers to: %s" % unused


@pytest.mark.parametrize("where,schema", list(top_schemas()), ids=lambda v: v if isinstance(v, str) else "")
def test_schema_is_valid_json_schema_2020_12(where, schema):
    jsonschema.Draft202012Validator.check_schema(schema)


def test_operations_have_unique_ids_and_responses():
    ids = []
    for template, method, op in operations():
        assert op.get("operationId"), "%s %s has no operationId" % (method.upper(), template)
        ids.append(op["operationId"])
        assert op.get("responses"), "%s %s has no response" % (method.upper(), template)
        for code in op["responses"]:
            assert re.fullmatch(r"[1-5][0-9][0-9]|[1-5]XX|default", code), code
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    assert not dupes, "operationIds used twice: %s" % dupes


def test_path_parameters_match_templates():
    for template, method, op in operations():
        params = [resolve(p) for p in SPEC["paths"][template].get("parameters", []) + op.get("parameters", [])]
        in_path = {p["name"] for p in params if p["in"] == "path"}
        assert in_path == set(re.findall(r"{([^}]+)}", template)), "%s %s" % (method, template)
        assert all(p["required"] for p in params if p["in"] == "path")


@pytest.mark.parametrize("where,value,schema", EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_example_matches_its_schema(where, value, schema):
    validate(value, schema, where)


def test_there_are_examples_of_every_body():
    assert len(EXAMPLES) > 50
    for template, method, op in operations():
        body = resolve(op.get("requestBody", {}))
        for mtype, media in body.get("content", {}).items():
            if mtype.startswith("application/json"):
                assert media.get("examples") or media.get("example"), "%s %s %s" % (method, template, mtype)


def problem_types_documented():
    return {entry["const"][len(PROBLEM_PREFIX):] for entry in SPEC["components"]["schemas"]["ProblemType"]["oneOf"]}


def problem_types_in_source():
    names = set()
    for path in list((ROOT / "src").rglob("*.cc")) + list((ROOT / "src").rglob("*.h")):
        text = path.read_text(encoding="utf-8", errors="replace")
        names.update(re.findall(r'MakeProblem\(\s*(?:http::status::|boost::beast::http::status::)\w+,\s*"([a-z0-9-]+)"',
                                text))
        names.update(re.findall(r'"urn:offload:problem:([a-z0-9-]+)"', text))
    return names


def test_every_problem_type_sent_is_documented():
    sent = problem_types_in_source()
    assert {"not-found", "malformed-request", "too-many-connections"} <= sent, sent
    missing = sorted(sent - problem_types_documented())
    assert not missing, "problem types the server sends that docs/openapi.json does not list: %s" % missing


@pytest.mark.parametrize("name", [
    n for n in sorted(problem_types_documented())])
def test_documented_problem_type_is_sent(name):
    assert name in problem_types_in_source(), "docs/openapi.json lists %s, which no source file sends" % name


def test_every_metrics_route_is_documented():
    header = (ROOT / "src" / "http" / "http_metrics.h").read_text()
    block = re.search(r"kRoutes\[\]\s*=\s*{(.*?)};", header, re.S).group(1)
    routes = [r for r in re.findall(r'"([^"]+)"', block) if r != "other"]
    assert "/v1/jobs" in routes
    missing = [r for r in routes if r not in SPEC["paths"]]
    assert not missing, "routes of the server's metrics that the document lacks: %s" % missing


# ------------------------------------------------------------------ the server

CONFIG = """
store = "memory"
shutdown_grace = "2s"
max_memory_result = 16        # binary results kept on disk: ETag, If-None-Match

[resources]
cpu = 8

[tasks.checksum]              # takes files: uploads, and a text result kept on disk
command = ["sha256sum"]
accept = ["*/*"]
content_type = "text/plain"
max_input = "4KiB"

[tasks.fail]                  # fails when it runs
command = ["false"]

[tasks.hold]                  # long jobs no other test submits: POST /v1/jobs/cancel
run = "builtin:sleep"
"""


class Server:
    def __init__(self, binary, folder):
        self.folder = folder
        config = folder / "offload.toml"
        config.write_text(CONFIG)
        self.lines = []
        self.proc = subprocess.Popen([str(binary), "serve", "--listen", "127.0.0.1:0", "--config", str(config)],
                                     cwd=str(folder), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        found = queue.Queue()

        def read_log():
            for raw in self.proc.stderr:
                line = raw.decode("utf-8", "replace")
                self.lines.append(line)
                m = LISTENING.search(line)
                if m:
                    found.put(int(m.group(2)))
            found.put(None)

        self.reader = threading.Thread(target=read_log, daemon=True)
        self.reader.start()
        try:
            self.port = found.get(timeout=START_TIMEOUT_S)
        except queue.Empty:
            self.port = None
        if not self.port:
            self.stop()
            pytest.fail("offload did not say it was listening within %d s:\n%s" % (START_TIMEOUT_S, self.log()))
        self.origin = "http://127.0.0.1:%d" % self.port

    def log(self):
        return "".join(self.lines[-50:])

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        self.reader.join(timeout=STOP_TIMEOUT_S)

    def connect(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT_S)

    def request(self, method, path, body=None, headers=None, json_body=None, read=True):
        """One request on its own connection: (status, headers, body bytes or None)."""
        headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers.setdefault("Content-Type", "application/json")
        conn = self.connect()
        try:
            conn.request(method, path, body=body, headers=headers)
            res = conn.getresponse()
            streaming = res.getheader("Content-Type", "").startswith("text/event-stream")
            data = res.read() if read and not streaming else None
            return res.status, res.headers, data
        finally:
            conn.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    binary = Path(os.environ.get("OFFLOAD_BIN") or ROOT / "build" / "src" / "offload").resolve()
    if not os.access(binary, os.X_OK):
        pytest.fail("no offload binary at %s: build it (scripts/build.sh) or set OFFLOAD_BIN" % binary)
    s = Server(binary, tmp_path_factory.mktemp("offload-openapi"))
    try:
        yield s
    finally:
        s.stop()


# ---- what the document says about a response

def media_essence(content_type):
    parts = [p.strip() for p in content_type.split(";")]
    params = {}
    for p in parts[1:]:
        if "=" in p:
            k, v = p.split("=", 1)
            params[k.strip().lower()] = v.strip().lower()
    return parts[0].lower(), params


def match_media(content_type, content):
    """The key of `content` a response's Content-Type falls under, most specific first."""
    essence, params = media_essence(content_type)
    best = None
    for key in content:
        k_essence, k_params = media_essence(key)
        if any(params.get(n) != v for n, v in k_params.items()):
            continue
        if k_essence == essence:
            rank = 0
        elif k_essence.endswith("/*") and essence.startswith(k_essence[:-1]):
            rank = 1
        elif k_essence == "*/*":
            rank = 2
        else:
            continue
        if best is None or rank < best[0]:
            best = (rank, key)
    return best[1] if best else None


def header_value(text, schema):
    schema = resolve(schema)
    wants_number = schema.get("type") in ("integer", "number") or isinstance(schema.get("const"), int)
    if wants_number:
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def check_against(response, what, status, headers, body, head=False):
    """Asserts that a real answer is what `response` (a Response Object) describes;
    returns the parsed JSON body, if any."""
    response = resolve(response)
    for name, h in response.get("headers", {}).items():
        h = resolve(h)
        value = headers.get(name)
        if h.get("required"):
            assert value is not None, "%s: %d without its %s header" % (what, status, name)
        if value is not None:
            validate(header_value(value, h["schema"]), h["schema"], "%s: header %s" % (what, name))
    content = response.get("content")
    if head:
        assert not body
        return None
    if not content:
        assert not body, "%s: %d has a body the document does not describe" % (what, status)
        return None
    ctype = headers.get("Content-Type")
    assert ctype, "%s: %d without a Content-Type" % (what, status)
    key = match_media(ctype, content)
    assert key, "%s: %d answered %s, documented as %s" % (what, status, ctype, list(content))
    essence, _ = media_essence(ctype)
    if body is None or not (essence == "application/json" or essence.endswith("+json")):
        return None
    data = json.loads(body)
    validate(data, content[key]["schema"], "%s: the %d body" % (what, status))
    return data


def check(method, template, status, headers, body):
    op = SPEC["paths"][template][method.lower()]
    responses = op["responses"]
    code = str(status)
    key = code if code in responses else code[0] + "XX" if code[0] + "XX" in responses else "default"
    what = "%s %s" % (method.upper(), template)
    assert key in responses, "%s answered %d, which the document does not list%s" % (
        what, status, (": " + body.decode(errors="replace")) if body else "")
    return check_against(responses[key], what, status, headers, body, head=method.upper() == "HEAD")


def call(server, method, template, path=None, **kw):
    """Sends a request to `path` (default: `template`) and checks the answer against
    the document's `method template`. Returns (status, headers, parsed body)."""
    status, headers, body = server.request(method, path or template, **kw)
    return status, headers, check(method, template, status, headers, body)


# ---- fixtures made through the API

@pytest.fixture(scope="module")
def finished_job(server):
    status, headers, job = call(server, "POST", "/v1/jobs", json_body={"task": "sleep", "input": {"ms": 1}},
                                headers={"Prefer": "wait=10"})
    assert status == 200 and job["status"] == "succeeded", job
    return job["id"]


def discover(server, page, prefix, fallback):
    """A file name that `page` (HTML) loads from `prefix`, for a /ui/{file} or /docs/{file}."""
    status, _, body = server.request("GET", page)
    if status == 200 and body:
        m = re.search(r'(?:src|href)="%s([^"/?#]+)"' % re.escape(prefix), body.decode("utf-8", "replace"))
        if m:
            return m.group(1)
    return fallback


SAMPLE_BODIES = {
    "submitJob": {"task": "sleep", "input": {"ms": 1}},
    "runTask": {"ms": 1},
    "cancelJobs": {"task": "noop", "status": "queued"},
}

ROUTES = [pytest.param(t, m, id="%s %s" % (m.upper(), t))
          for t, m, _ in operations()]


@pytest.mark.parametrize("template,method", ROUTES)
def test_documented_route_exists(server, finished_job, template, method):
    fill = {"id": finished_job, "name": "sleep"}
    if "{file}" in template:
        fill["file"] = (discover(server, "/ui", "/ui/", "index.html") if template.startswith("/ui")
                        else discover(server, "/docs", "/docs/", "rapidoc-min.js"))
    path = template
    for k, v in fill.items():
        path = path.replace("{%s}" % k, v)
    op = SPEC["paths"][template][method]
    headers = {}
    json_body = None
    if method == "options":
        headers = {"Origin": server.origin, "Access-Control-Request-Method": "POST"}
    elif "application/json" in resolve(op.get("requestBody", {})).get("content", {}):
        json_body = SAMPLE_BODIES.get(op["operationId"], {})
    status, res_headers, body = server.request(method.upper(), path, json_body=json_body, headers=headers)
    assert status != 405, "%s %s: 405, Allow: %s" % (method.upper(), path, res_headers.get("Allow"))
    if status == 404:
        assert method != "head", "HEAD %s: 404 (the job and task exist: the route does not)" % path
        detail = json.loads(body).get("detail", "")
        assert not detail.startswith("no resource at"), "%s %s: %s" % (method.upper(), path, detail)
    check(method, template, status, res_headers, body)


# ---- responses checked against their schemas

def test_health_and_metrics(server):
    status, _, health = call(server, "GET", "/healthz")
    assert status == 200 and health == {"status": "ok"}
    status, headers, _ = call(server, "GET", "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")


def test_submit_get_and_list(server):
    status, headers, job = call(server, "POST", "/v1/jobs", json_body={"task": "sleep", "input": {"ms": 1}})
    assert status == 202
    assert headers["Location"] == "/v1/jobs/" + job["id"]
    assert job["task"] == "sleep" and job["status"] in ("queued", "running", "succeeded")
    status, _, got = call(server, "GET", "/v1/jobs/{id}", "/v1/jobs/%s?wait=10" % job["id"])
    assert status == 200 and got["status"] == "succeeded" and got["result"] is None
    assert got["result_url"] == "/v1/jobs/%s/result" % job["id"]
    status, _, page = call(server, "GET", "/v1/jobs")
    assert status == 200 and job["id"] in [j["id"] for j in page["jobs"]]
    assert all("result" not in j for j in page["jobs"])
    status, _, page = call(server, "GET", "/v1/jobs", "/v1/jobs?task=sleep&status=succeeded&limit=1&include=result")
    assert status == 200 and len(page["jobs"]) == 1 and "result" in page["jobs"][0]
    if page["next_cursor"] is not None:
        status, _, _ = call(server, "GET", "/v1/jobs", "/v1/jobs?limit=1&cursor=" + page["next_cursor"])
        assert status == 200


def test_submit_with_prefer_wait_and_idempotency_key(server):
    key = "openapi-" + uuid.uuid4().hex
    body = {"task": "cpu", "input": {"ms": 1}}
    status, headers, job = call(server, "POST", "/v1/jobs", json_body=body,
                                headers={"Prefer": "respond-async, wait=10", "Idempotency-Key": key})
    assert status == 200 and job["status"] == "succeeded" and job["result"]["ms"] == 1
    status, _, again = call(server, "POST", "/v1/jobs", json_body=body, headers={"Idempotency-Key": key})
    assert status == 200 and again["id"] == job["id"]


def test_map(server):
    status, _, job = call(server, "POST", "/v1/jobs", headers={"Prefer": "wait=10"},
                          json_body={"task": "cpu", "map": [{"ms": 1}, {"ms": 1}], "on_error": "collect"})
    assert status == 200 and job["map"]["total"] == 2 and len(job["result"]) == 2
    status, _, results = call(server, "POST", "/v1/tasks/{name}/run", "/v1/tasks/cpu/run",
                              json_body={"map": [{"ms": 1}, {"ms": 1}, {"ms": 1}]})
    assert status == 200 and len(results) == 3


def test_tasks_and_resources(server):
    status, _, tasks = call(server, "GET", "/v1/tasks")
    assert status == 200
    assert {"noop", "sleep", "cpu", "mandelbrot", "checksum", "fail", "hold"} <= {t["name"] for t in tasks["tasks"]}
    status, _, resources = call(server, "GET", "/v1/resources")
    assert status == 200 and "cpu" in [r["name"] for r in resources["resources"]]


def test_unknown_job_is_a_404_problem(server):
    for method, template, suffix in [("GET", "/v1/jobs/{id}", ""), ("DELETE", "/v1/jobs/{id}", ""),
                                     ("GET", "/v1/jobs/{id}/result", "/result"),
                                     ("GET", "/v1/jobs/{id}/events", "/events")]:
        status, headers, problem = call(server, method, template, "/v1/jobs/014w0eG8hhYzkJs" + suffix)
        assert status == 404, (method, template)
        assert headers["Content-Type"] == "application/problem+json"
        assert problem["type"] == PROBLEM_PREFIX + "not-found"
        assert "014w0eG8hhYzkJs" in problem["detail"]


def test_unknown_task_is_a_422_problem(server):
    status, _, problem = call(server, "POST", "/v1/jobs", json_body={"task": "no-such-task"})
    assert status == 422 and problem["type"] == PROBLEM_PREFIX + "invalid-request"
    assert "no-such-task" in problem["detail"]
    status, _, problem = call(server, "POST", "/v1/tasks/{name}/run", "/v1/tasks/no-such-task/run", json_body={})
    assert status == 422 and problem["type"] == PROBLEM_PREFIX + "invalid-request"
    status, _, problem = call(server, "POST", "/v1/jobs", json_body={"task": "sleep", "input": {"ms": -1}})
    assert status == 422 and "input.ms" in problem["detail"]
    status, _, problem = call(server, "GET", "/v1/jobs", "/v1/jobs?limit=0")
    assert status == 422


def test_malformed_requests_are_400_problems(server):
    status, _, problem = call(server, "POST", "/v1/jobs", body=b'{"task":',
                              headers={"Content-Type": "application/json"})
    assert status == 400 and problem["type"] == PROBLEM_PREFIX + "malformed-request"
    status, _, _ = call(server, "GET", "/v1/jobs/{id}", "/v1/jobs/014w0eG8hhYzkJs?wait=soon")
    assert status == 400
    status, _, _ = call(server, "GET", "/v1/jobs", "/v1/jobs?cursor=abc")
    assert status == 400


def test_a_body_not_sent_as_json_is_a_415(server):
    status, headers, problem = call(server, "POST", "/v1/jobs", body=b'{"task":"sleep"}',
                                    headers={"Content-Type": "text/plain"})
    assert status == 415 and headers["Accept"] == "application/json"
    status, _, _ = call(server, "POST", "/v1/tasks/{name}/run", "/v1/tasks/cpu/run", body=b"abc",
                        headers={"Content-Type": "image/png"})
    assert status == 415


def test_another_method_is_a_405_with_allow(server):
    status, headers, body = server.request("PUT", "/v1/jobs", json_body={})
    assert status == 405
    problem = check_against(SPEC["components"]["responses"]["MethodNotAllowed"], "PUT /v1/jobs", status, headers,
                            body)
    assert headers["Allow"] == "GET, POST" and problem["type"] == PROBLEM_PREFIX + "method-not-allowed"


def test_request_id_is_echoed(server):
    for path in ("/healthz", "/v1/jobs/014w0eG8hhYzkJs"):
        _, headers, _ = server.request("GET", path, headers={"X-Request-Id": "openapi-test-42"})
        assert headers["X-Request-Id"] == "openapi-test-42"
        assert headers["X-Content-Type-Options"] == "nosniff"


def test_origin_and_host_checks(server):
    status, _, problem = call(server, "GET", "/v1/tasks", headers={"Origin": "https://evil.example"})
    assert status == 403 and problem["type"] == PROBLEM_PREFIX + "origin-not-allowed"
    status, _, problem = call(server, "GET", "/v1/tasks", headers={"Host": "evil.example"})
    assert status == 421 and problem["type"] == PROBLEM_PREFIX + "misdirected-request"
    status, headers, _ = call(server, "OPTIONS", "/v1/jobs",
                              headers={"Origin": server.origin, "Access-Control-Request-Method": "POST"})
    assert status == 204 and headers["Access-Control-Allow-Origin"] == server.origin


def test_header_too_large_is_a_431(server):
    status, _, problem = call(server, "GET", "/v1/tasks", headers={"X-Padding": "a" * (70 * 1024)})
    assert status == 431 and problem["type"] == PROBLEM_PREFIX + "header-too-large"


def test_cancel_and_the_result_of_unfinished_and_canceled_jobs(server):
    status, _, job = call(server, "POST", "/v1/jobs", json_body={"task": "sleep", "input": {"ms": 60000}})
    assert status == 202
    result = "/v1/jobs/%s/result" % job["id"]
    status, headers, problem = call(server, "GET", "/v1/jobs/{id}/result", result)
    assert status == 409 and problem["type"] == PROBLEM_PREFIX + "not-finished" and headers["Retry-After"] == "1"
    status, _, canceled = call(server, "DELETE", "/v1/jobs/{id}", "/v1/jobs/" + job["id"])
    assert status == 200 and canceled["status"] == "canceled" and canceled["error"]["type"] == "canceled"
    status, _, problem = call(server, "GET", "/v1/jobs/{id}/result", result)
    assert status == 409 and problem["type"] == PROBLEM_PREFIX + "job-canceled"
    assert problem["error"]["type"] == "canceled"
    call(server, "GET", "/v1/jobs/{id}", "/v1/jobs/%s?wait=10" % job["id"])
    status, _, problem = call(server, "DELETE", "/v1/jobs/{id}", "/v1/jobs/" + job["id"])
    assert status == 409 and problem["type"] == PROBLEM_PREFIX + "conflict"


def test_failed_job(server):
    status, _, job = call(server, "POST", "/v1/jobs", json_body={"task": "fail"}, headers={"Prefer": "wait=10"})
    assert status == 200 and job["status"] == "failed" and job["error"]["type"] == "command_failed"
    status, _, problem = call(server, "GET", "/v1/jobs/{id}/result", "/v1/jobs/%s/result" % job["id"])
    assert status == 500 and problem["type"] == PROBLEM_PREFIX + "job-failed"
    assert problem["error"] == job["error"]
    status, _, problem = call(server, "POST", "/v1/tasks/{name}/run", "/v1/tasks/fail/run", json_body={})
    assert status == 500 and problem["type"] == PROBLEM_PREFIX + "job-failed"


def test_run(server):
    status, _, result = call(server, "POST", "/v1/tasks/{name}/run", "/v1/tasks/cpu/run", json_body={"ms": 1})
    assert status == 200 and result["ms"] == 1
    status, headers, _ = call(server, "POST", "/v1/tasks/{name}/run", "/v1/tasks/mandelbrot/run",
                              json_body={"width": 8, "height": 8})
    assert status == 200 and headers["Content-Type"] == "image/png"


def multipart(fields):
    """A multipart/form-data body: (content type, bytes). `fields` maps a name to
    (filename or None, content type or None, bytes)."""
    boundary = "openapi" + uuid.uuid4().hex
    out = b""
    for name, (filename, ctype, data) in fields.items():
        out += b"--" + boundary.encode() + b"\r\n"
        disposition = 'form-data; name="%s"' % name + ('; filename="%s"' % filename if filename else "")
        out += b"Content-Disposition: " + disposition.encode() + b"\r\n"
        if ctype:
            out += b"Content-Type: " + ctype.encode() + b"\r\n"
        out += b"\r\n" + data + b"\r\n"
    out += b"--" + boundary.encode() + b"--\r\n"
    return "multipart/form-data; boundary=" + boundary, out


def test_uploads_and_a_result_served_by_range(server):
    data = b"hello, offload"
    status, _, job = call(server, "POST", "/v1/jobs", "/v1/jobs?task=checksum&priority=3&timeout=30", body=data,
                          headers={"Content-Type": "application/octet-stream", "Prefer": "wait=10"})
    assert status == 200 and job["status"] == "succeeded", job
    assert job["files"][0]["field"] == "body" and job["files"][0]["sha256"] == hashlib.sha256(data).hexdigest()
    assert job["priority"] == 3 and "result_sha256" in job
    result = "/v1/jobs/%s/result" % job["id"]
    status, headers, _ = call(server, "GET", "/v1/jobs/{id}/result", result)
    assert status == 200 and headers["ETag"] == '"%s"' % job["result_sha256"]
    etag = headers["ETag"]
    status, _, _ = call(server, "GET", "/v1/jobs/{id}/result", result, headers={"If-None-Match": etag})
    assert status == 304
    status, headers, _ = call(server, "GET", "/v1/jobs/{id}/result", result, headers={"Range": "bytes=0-9"})
    assert status == 206 and headers["Content-Range"] == "bytes 0-9/%d" % job["result_size"]
    status, headers, _ = call(server, "GET", "/v1/jobs/{id}/result", result,
                              headers={"Range": "bytes=0-9", "If-Range": '"another"'})
    assert status == 200
    status, headers, problem = call(server, "GET", "/v1/jobs/{id}/result", result, headers={"Range": "bytes=9999-"})
    assert status == 416 and headers["Content-Range"] == "bytes */%d" % job["result_size"]
    status, headers, _ = call(server, "HEAD", "/v1/jobs/{id}/result", result)
    assert status == 200 and headers["Content-Length"] == str(job["result_size"])

    ctype, body = multipart({"file": ("a.txt", "text/plain", data)})
    status, _, job = call(server, "POST", "/v1/jobs", "/v1/jobs?task=checksum", body=body,
                          headers={"Content-Type": ctype, "Prefer": "wait=10"})
    assert status == 200 and job["files"][0]["field"] == "file" and job["files"][0]["filename"] == "a.txt"

    status, _, problem = call(server, "POST", "/v1/jobs", "/v1/jobs?task=checksum&colour=blue", body=data,
                              headers={"Content-Type": "application/octet-stream"})
    assert status == 422 and "colour" in problem["detail"]
    status, _, problem = call(server, "POST", "/v1/jobs", "/v1/jobs?task=checksum", body=b"x" * 5000,
                              headers={"Content-Type": "application/octet-stream"})
    assert status == 413 and problem["type"] == PROBLEM_PREFIX + "body-too-large"
    status, headers, _ = call(server, "POST", "/v1/jobs", "/v1/jobs?task=cpu", body=data,
                              headers={"Content-Type": "image/png"})
    assert status == 415 and headers["Accept"] == "application/json"


def read_events(server, path, until, headers=None, deadline_s=10):
    """The (event, id, data) messages of an event stream, read until `until(messages)`
    is true, the stream ends or `deadline_s` passes. Checks the response's header."""
    conn = server.connect()
    try:
        conn.request("GET", path, headers=headers or {})
        res = conn.getresponse()
        template = "/v1/events" if path.startswith("/v1/events") else "/v1/jobs/{id}/events"
        check("GET", template, res.status, res.headers, None)
        assert res.status == 200
        media = SPEC["paths"][template]["get"]["responses"]["200"]["content"]["text/event-stream"]
        messages, fields, first = [], {}, True
        end = time.monotonic() + deadline_s
        while time.monotonic() < end and not until(messages):
            raw = res.readline()
            if not raw:
                break
            line = raw.decode("utf-8").rstrip("\n")
            if first:
                assert line == "retry: 2000"
                first = False
            if line == "":
                if "event" in fields:
                    event = fields["event"]
                    assert event in media["x-event-data"], "an undocumented event: %s" % event
                    data = json.loads(fields["data"])
                    validate(data, media["x-event-data"][event], "%s: event %s" % (path, event))
                    messages.append((event, fields.get("id"), data))
                fields = {}
            elif not line.startswith(":") and ": " in line:
                k, v = line.split(": ", 1)
                fields[k] = v
        return messages
    finally:
        conn.close()


def test_events_of_one_job(server, finished_job):
    messages = read_events(server, "/v1/jobs/%s/events" % finished_job, lambda m: False)
    assert [m[0] for m in messages] == ["job"] and messages[0][2]["status"] == "succeeded"


def test_events_of_every_job(server):
    got = {}

    def subscribe():
        try:
            got["messages"] = read_events(
                server, "/v1/events?task=noop&last_event_id=from-another-life",
                lambda m: any(e == "status" and d["status"] == "succeeded" for e, _, d in m))
        except BaseException as e:  # Raised again below, in the test's own thread.
            got["error"] = e

    reader = threading.Thread(target=subscribe, daemon=True)
    reader.start()
    deadline = time.monotonic() + 10
    # Jobs until the subscriber sees one finish: it may subscribe after the first.
    while reader.is_alive() and time.monotonic() < deadline:
        status, _, _ = call(server, "POST", "/v1/jobs", json_body={"task": "noop"})
        assert status == 202 or status == 200
        reader.join(timeout=0.2)
    reader.join(timeout=15)
    if "error" in got:
        raise got["error"]
    messages = got.get("messages", [])
    assert messages and messages[0][0] == "reset"
    assert any(e == "status" and d["status"] == "succeeded" and d["task"] == "noop" for e, _, d in messages)
    assert all(i for e, i, _ in messages if e == "status")


# ---- retry, cancel by filter, and the pages served as they are

def test_retry(server, finished_job):
    status, _, job = call(server, "POST", "/v1/jobs", json_body={"task": "sleep", "input": {"ms": 60000}})
    assert status == 202
    call(server, "DELETE", "/v1/jobs/{id}", "/v1/jobs/" + job["id"])
    status, headers, again = call(server, "POST", "/v1/jobs/{id}/retry", "/v1/jobs/%s/retry" % job["id"])
    assert status == 202 and again["retry_of"] == job["id"] and again["id"] != job["id"]
    assert headers["Location"] == "/v1/jobs/" + again["id"] and again["task"] == "sleep"
    call(server, "DELETE", "/v1/jobs/{id}", "/v1/jobs/" + again["id"])
    status, _, problem = call(server, "POST", "/v1/jobs/{id}/retry", "/v1/jobs/%s/retry" % finished_job)
    assert status == 409 and problem["type"] == PROBLEM_PREFIX + "not-retryable"
    status, _, problem = call(server, "POST", "/v1/jobs/{id}/retry", "/v1/jobs/014w0eG8hhYzkJs/retry")
    assert status == 404 and problem["type"] == PROBLEM_PREFIX + "not-found"


def test_cancel_matching(server):
    ids = []
    for _ in range(2):
        status, _, job = call(server, "POST", "/v1/jobs", json_body={"task": "hold", "input": {"ms": 60000}})
        assert status == 202
        ids.append(job["id"])
    status, _, answer = call(server, "POST", "/v1/jobs/cancel", json_body={"task": "hold"})
    try:
        assert status == 200 and answer == {"canceled": 2}
        for i in ids:
            status, _, job = call(server, "GET", "/v1/jobs/{id}", "/v1/jobs/" + i)
            assert job["status"] == "canceled"
        status, _, problem = call(server, "POST", "/v1/jobs/cancel", json_body={"status": "succeeded"})
        assert status == 422 and problem["type"] == PROBLEM_PREFIX + "invalid-request"
    finally:
        for i in ids:
            server.request("DELETE", "/v1/jobs/" + i)


def test_openapi_json_is_this_document(server):
    status, headers, doc = call(server, "GET", "/openapi.json")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert doc == SPEC, "GET /openapi.json is not docs/openapi.json: rebuild, or the embedded copy is stale"
    status, _, _ = call(server, "GET", "/openapi.json", headers={"If-None-Match": headers["ETag"]})
    assert status == 304


def test_docs_page(server):
    status, headers, _ = call(server, "GET", "/docs")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    status, _, body = server.request("GET", "/docs")
    assert b"/openapi.json" in body


def test_dashboard(server):
    status, headers, _ = call(server, "GET", "/")
    assert status == 302 and headers["Location"] == "/ui"
    status, headers, _ = call(server, "GET", "/ui")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "Content-Security-Policy" in headers
    status, _, _ = call(server, "GET", "/ui", headers={"If-None-Match": headers["ETag"]})
    assert status == 304
    status, _, problem = call(server, "GET", "/ui/{file}", "/ui/no-such-file.js")
    assert status == 404 and problem["detail"].startswith("no resource at")
