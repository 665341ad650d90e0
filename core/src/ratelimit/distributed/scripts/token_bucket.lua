-- A token bucket in whole micro-tokens, run atomically by Redis (EVAL / EVALSHA).
-- distlab's simulated store runs the same steps natively (ratelimit/distributed/scripts.rs),
-- and tests/tests/redis_scripts.rs checks that both give the same answer to every request.
--
-- KEYS[1]  the bucket: a hash {tokens = micro-tokens, ts = µs of the last refill}
-- ARGV[1]  capacity, whole tokens (1 .. 10^9)
-- ARGV[2]  refill rate, whole tokens per second (1 .. 10^9) = micro-tokens per µs
-- ARGV[3]  now, µs. The caller passes the time instead of the script calling TIME, so the
--          script is deterministic (and replicates as a script, not as its effects).
-- ARGV[4]  tokens wanted (1 .. capacity)
-- ARGV[5]  '1': grant as many as there are, up to the wanted (a gateway's lease);
--          '0': all or nothing (one request)
-- Returns  {granted, micro-tokens left, µs until the refusal would be granted (0 if granted)}
--
-- All arithmetic stays on integers below 2^53, which Lua's doubles hold exactly; the only
-- sum that can exceed it is capped at the capacity, and rounding cannot cross that cap.

local M = 1000000

-- floor(a / b) for integers below 2^53, corrected if the division rounded across an integer.
local function floor_div(a, b)
  local q = math.floor(a / b)
  if q * b > a then
    q = q - 1
  elseif (q + 1) * b <= a then
    q = q + 1
  end
  return q
end

local function ceil_div(a, b)
  return -floor_div(-a, b)
end

local capacity = tonumber(ARGV[1]) * M
local rate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local wanted = tonumber(ARGV[4])
local partial = ARGV[5] == '1'

local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  -- A missing (or expired) bucket is a full one.
  tokens = capacity
  ts = now
end
-- A clock that went back refills nothing, and the bucket keeps its later time.
if now > ts then
  tokens = math.min(capacity, tokens + (now - ts) * rate)
  ts = now
end

local available = floor_div(tokens, M)
local granted = 0
if partial then
  granted = math.min(wanted, available)
elseif available >= wanted then
  granted = wanted
end
tokens = tokens - granted * M

local retry = 0
if granted == 0 then
  local need = wanted
  if partial then
    need = 1
  end
  retry = ceil_div(need * M - tokens, rate)
end

-- Numbers are written with %d: Lua's own tostring would print large ones as 1e+15.
redis.call('HSET', KEYS[1], 'tokens', string.format('%d', tokens), 'ts', string.format('%d', ts))
-- The key lives until the bucket is full again (a missing bucket reads as full), plus a
-- second of grace: the TTL runs on the server's clock while `now` is the caller's, and a
-- key must not vanish early when the two disagree a little.
redis.call('PEXPIRE', KEYS[1], ceil_div(ceil_div(capacity - tokens, rate), 1000) + 1000)
return {granted, tokens, retry}
