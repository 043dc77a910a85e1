-- wrk script: GET with a bearer token, with If-None-Match when BENCH_IF_NONE_MATCH is set.
local tally = require("tally")
setup, response, done = tally.setup, tally.response, tally.done

wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
local etag = os.getenv("BENCH_IF_NONE_MATCH") or ""
if etag ~= "" then
  wrk.headers["If-None-Match"] = etag
end
