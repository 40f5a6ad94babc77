-- wrk script of the serving benchmark: POST one JSON body, print one machine-readable line.
-- The body file comes from the environment (WRK_BODY_FILE); the last line on stdout is
--   SERVING_RESULT {"requests": N, "duration_us": D, "p50_us": ..., "p99_us": ..., ...}
-- with wrk's own error counters (connect, read, write, status = non-2xx/3xx, timeout).

local path = os.getenv("WRK_BODY_FILE")
if path == nil then
  error("WRK_BODY_FILE is not set: the JSON body to POST")
end
local fh = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = fh:read("*a")
fh:close()
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'SERVING_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"p50_us": %.1f, "p90_us": %.1f, "p99_us": %.1f, "max_us": %.1f, "mean_us": %.1f, '
      .. '"errors_connect": %d, "errors_read": %d, "errors_write": %d, '
      .. '"errors_status": %d, "errors_timeout": %d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
