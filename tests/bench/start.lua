-- wrk script: POST /api/downloads/start as one user after another (BENCH_TOKENS_FILE: a token
-- a line), a new title and quality each time (a repeat of a held one would only return it), and
-- optional pacing per connection.
local tally = require("tally")
response, done = tally.response, tally.done

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS_FILE")) do
  tokens[#tokens + 1] = line
end
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
if pause > 0 then
  function delay() return pause end
end

local stride = tonumber(os.getenv("BENCH_THREADS"))
local qualities = {"480p", "720p"}
local threads = 0

function setup(thread)
  tally.setup(thread)
  thread:set("first", threads)
  threads = threads + 1
end

local sent = 0

function request()
  -- Thread k takes combinations k, k + stride, k + 2 × stride, …: none repeats in a run. The
  -- user is the combination modulo the number of tokens (bench.py's drain backlog does the same).
  local combination = first + sent * stride
  sent = sent + 1
  wrk.headers["Authorization"] = "Bearer " .. tokens[combination % #tokens + 1]
  local body = string.format('{"content_id": "bench-%d", "quality": "%s"}',
                             math.floor(combination / 2), qualities[combination % 2 + 1])
  return wrk.format(nil, nil, nil, body)
end
