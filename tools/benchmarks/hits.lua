-- Scenario 1: the same token request over and over (a cache hit after the first). Prints one JSON result line.
wrk.method = "GET"
wrk.headers["Metadata"] = "true"

function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout
  io.write(string.format('RESULT {"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"requests":%d,"errors":%d}\n',
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, errors))
end
