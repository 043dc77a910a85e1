-- wrk script: POST /api/downloads/start with a bearer token, a new title and quality each time
-- (a repeat of a held one would only return it), and optional pacing per connection.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
if pause > 0 then
  function delay() return pause end
end

local stride = tonumber(os.getenv("BENCH_THREADS"))
local qualities = {"480p", "720p"}
local threads = 0

function setup(thread)
  thread:set("first", threads)
  threads = threads + 1
end

local sent = 0

function request()
  -- Thread k takes combinations k, k + stride, k + 2 × stride, …: none repeats in a run.
  local combination = first + sent * stride
  sent = sent + 1
  local body = string.format('{"content_id": "bench-%d", "quality": "%s"}',
                             math.floor(combination / 2), qualities[combination % 2 + 1])
  return wrk.format(nil, nil, nil, body)
end
