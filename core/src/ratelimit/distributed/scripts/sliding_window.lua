-- A sliding-window log: a sorted set of the admitted requests scored by time, run
-- atomically by Redis (EVAL / EVALSHA). distlab's simulated store runs the same steps
-- natively (ratelimit/distributed/scripts.rs), and tests/tests/redis_scripts.rs checks that
-- both give the same answer to every request, bad arguments included.
--
-- KEYS[1]  the log: a sorted set {request id -> µs it was admitted}
-- ARGV[1]  limit: requests admitted in any window (1 .. 10^6)
-- ARGV[2]  window, µs (1 .. 10^12)
-- ARGV[3]  now, µs (0 .. 2^52, Unix time in µs until the year 2112). The caller passes the
--          time instead of the script calling TIME, so the script is deterministic (and
--          replicates as a script, not as its effects).
-- ARGV[4]  the request's id, unique (a repeated id moves its old entry instead of adding)
-- Returns  {1 admitted | 0 refused, requests left in the window, µs until the oldest
--           entry leaves it (0 if admitted)}
--          or an error reply `ERR invalid `<name>`: ...` naming the first bad argument.
--
-- Every argument is checked before the first command: Redis does not roll a script back,
-- so a script that failed half way would leave its writes behind. Numbers must be plain
-- decimal integers ('1e3', '1.5', ' 5', '-5' and '0x10' are refused, not read as numbers).
--
-- Scores are integers below 2^53, which Lua's doubles and Redis's scores hold exactly:
-- now <= 2^52 and window <= 10^12, so every sum below stays under 2^53.

local function refuse(name, problem, got)
  return redis.error_reply(string.format("ERR invalid `%s`: %s, got '%s'", name, problem, got))
end

-- ARGV[i] as an integer in [lo, hi], or nil and the error reply naming it.
local function int_arg(i, name, lo, hi)
  local s = ARGV[i]
  if string.find(s, '^%d+$') then
    local n = tonumber(s)
    if n >= lo and n <= hi then
      return n
    end
  end
  return nil, refuse(name, string.format('must be an integer from %d to %d', lo, hi), s)
end

if #KEYS ~= 1 or #ARGV ~= 4 then
  return redis.error_reply(string.format(
    'ERR sliding_window.lua takes 1 key and 4 arguments, got %d and %d', #KEYS, #ARGV))
end
local limit, window, now, err
limit, err = int_arg(1, 'limit', 1, 1000000)
if err then return err end
window, err = int_arg(2, 'windowUs', 1, 1000000000000)
if err then return err end
now, err = int_arg(3, 'nowUs', 0, 4503599627370496)
if err then return err end

local function ceil_div(a, b)
  local q = math.floor(a / b)
  if q * b < a then
    q = q + 1
  elseif (q - 1) * b >= a then
    q = q - 1
  end
  return q
end

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
