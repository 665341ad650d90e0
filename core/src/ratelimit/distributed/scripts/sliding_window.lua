-- A sliding-window log: a sorted set of the admitted requests scored by time, run
-- atomically by Redis (EVAL / EVALSHA). distlab's simulated store runs the same steps
-- natively (ratelimit/distributed/scripts.rs), and tests/tests/redis_scripts.rs checks that
-- both give the same answer to every request.
--
-- KEYS[1]  the log: a sorted set {request id -> µs it was admitted}
-- ARGV[1]  limit: requests admitted in any window (1 .. 10^6)
-- ARGV[2]  window, µs (1 .. 10^12)
-- ARGV[3]  now, µs. The caller passes the time instead of the script calling TIME, so the
--          script is deterministic (and replicates as a script, not as its effects).
-- ARGV[4]  the request's id, unique (a repeated id moves its old entry instead of adding)
-- Returns  {1 admitted | 0 refused, requests left in the window, µs until the oldest
--           entry leaves it (0 if admitted)}
--
-- Scores are integers below 2^53, which Lua's doubles and Redis's scores hold exactly.

local function ceil_div(a, b)
  local q = math.floor(a / b)
  if q * b < a then
    q = q + 1
  elseif (q - 1) * b >= a then
    q = q - 1
  end
  return q
end

local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local now = tonumber(ARGV[3])

-- The window is (now - window, now]: an entry exactly one window old has left it.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now - window))
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], string.format('%d', now), ARGV[4])
  -- Every entry has left the window by then; plus a second of grace, because the TTL runs
  -- on the server's clock while `now` is the caller's.
  redis.call('PEXPIRE', KEYS[1], ceil_div(window, 1000) + 1000)
  return {1, limit - count - 1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, 0, tonumber(oldest[2]) + window - now}
