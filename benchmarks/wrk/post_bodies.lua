-- wrk script for benchmarks/bench_serve.py: POST JSON bodies in turn, count non-200 answers.
--
--   wrk -t 2 -c 8 -d 20s --latency -s post_bodies.lua URL -- BODIES_FILE
--
-- BODIES_FILE holds one request body per line (compact JSON has no raw newlines). Every
-- thread pre-formats all requests once, then cycles through them from its own offset.
-- `response` counts statuses other than 200 per thread; `done` sums them and prints one
-- machine-readable line, "bench_serve: non200=N", after wrk's own report.

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local path = args[1]
  if path == nil then
    error("usage: wrk ... -s post_bodies.lua URL -- BODIES_FILE")
  end
  requests_ = {}
  local headers = { ["Content-Type"] = "application/json" }
  for line in io.lines(path) do
    if #line > 0 then
      table.insert(requests_, wrk.format("POST", wrk.path, headers, line))
    end
  end
  if #requests_ == 0 then
    error("no request bodies in " .. path)
  end
  index_ = (id * 7919) % #requests_ -- threads start at different bodies
  non200 = 0
end

function request()
  index_ = index_ % #requests_ + 1
  return requests_[index_]
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + (thread:get("non200") or 0)
  end
  io.write(string.format("bench_serve: non200=%d\n", total))
end
