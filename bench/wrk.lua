-- wrk script for the benchmarks: replays pre-built requests read from the file named by
-- WRK_REQUESTS, one request per line: METHOD \t PATH \t "Name: value" ... \t BODY (last field,
-- may be empty). Thread k of WRK_THREADS takes lines k, k + n, k + 2n, ... and replays them in
-- order (cycling when it runs out, which the report flags). With WRK_ONCE=1 a thread sends each
-- of its requests once, then only GET /healthz (not counted) until the caller interrupts wrk;
-- once all its requests are answered it creates the file WRK_DONE_DIR/<thread id>. done() prints one line "WRK_JSON {...}".

local threads = {}
FILLER_BODY = '{"status":"ok"}' -- what GET /healthz answers
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local function split(line)
  local fields, start = {}, 1
  while true do
    local tab = string.find(line, "\t", start, true)
    if not tab then table.insert(fields, string.sub(line, start)); return fields end
    table.insert(fields, string.sub(line, start, tab - 1))
    start = tab + 1
  end
end

function init(args)
  local n = tonumber(os.getenv("WRK_THREADS"))
  once = os.getenv("WRK_ONCE") == "1"
  requests, sent, ok, bad, wrapped = {}, 0, 0, 0, 0
  -- wrk calls request() of its first thread once after init() only to check what it returns
  verifying = id == 0
  local index = 0
  for line in io.lines(os.getenv("WRK_REQUESTS")) do
    if index % n == id then
      local fields = split(line)
      local headers = {}
      for i = 3, #fields - 1 do
        local name, value = string.match(fields[i], "^([^:]+): (.*)$")
        headers[name] = value
      end
      local body = fields[#fields]
      if body == "" then body = nil end
      table.insert(requests, wrk.format(fields[1], fields[2], headers, body))
    end
    index = index + 1
  end
end

function request()
  if verifying then
    verifying = false
    return wrk.format("GET", "/healthz")
  end
  if #requests == 0 or (once and sent >= #requests) then
    return wrk.format("GET", "/healthz")
  end
  sent = sent + 1
  if sent > #requests then wrapped = 1 end
  return requests[(sent - 1) % #requests + 1]
end

function response(status, headers, body)
  if once and body == FILLER_BODY then return end
  if status >= 200 and status < 300 then ok = ok + 1 else bad = bad + 1 end
  if once and ok + bad == #requests then -- every request of this thread answered
    io.open(os.getenv("WRK_DONE_DIR") .. "/" .. id, "w"):close()
  end
end

function done(summary, latency, requests)
  local per_thread = {}
  for _, t in ipairs(threads) do
    table.insert(per_thread, string.format('{"id":%d,"sent":%d,"ok":%d,"bad":%d,"wrapped":%d}',
      t:get("id"), t:get("sent"), t:get("ok"), t:get("bad"), t:get("wrapped")))
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"socket_errors":%d,"threads":[%s]}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect + e.read + e.write + e.timeout,
    table.concat(per_thread, ",")))
end
