-- Scenario 2: every request names a resource nobody asked for before (BENCH_TAG keeps runs apart), so neither the
-- proxies nor the emulator can answer from a cache. Prints one JSON result line.
local tag = os.getenv("BENCH_TAG") or "miss"
local threads = {}
local counter = 0
local id = 0

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function request()
  counter = counter + 1
  return wrk.format("GET", "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://" .. tag .. "-" .. id .. "-" .. counter .. ".example",
    { ["Metadata"] = "true" })
end

function init(args)
  id = wrk.thread:get("id") or 0
end

function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout
  io.write(string.format('RESULT {"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"requests":%d,"errors":%d}\n',
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, errors))
end
