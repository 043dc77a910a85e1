-- wrk module: each thread counts its answers by status, and the counts are printed at the end
-- ("status 202: 1234"). wrk's own "Non-2xx or 3xx responses" counts only statuses above 399.
local tally = {}
local threads = {}
statuses = {}

function tally.setup(thread)
  threads[#threads + 1] = thread
end

function tally.response(status)
  statuses[status] = (statuses[status] or 0) + 1
end

function tally.done()
  local total = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + count
    end
  end
  for status, count in pairs(total) do
    io.write(string.format("status %d: %d\n", status, count))
  end
end

return tally
