-- A token bucket in whole micro-tokens, run atomically by Redis (EVAL / EVALSHA).
-- distlab's simulated store runs the same steps natively (ratelimit/distributed/scripts.rs),
-- and tests/tests/redis_scripts.rs checks that both give the same answer to every request,
-- bad arguments included.
--
-- KEYS[1]  the bucket: a hash {tokens = micro-tokens, ts = µs of the last refill}
-- ARGV[1]  capacity, whole tokens (1 .. 10^9)
-- ARGV[2]  refill rate, whole tokens per second (1 .. 10^9) = micro-tokens per µs
-- ARGV[3]  now, µs (0 .. 2^52, Unix time in µs until the year 2112). The caller passes the
--          time instead of the script calling TIME, so the script is deterministic (and
--          replicates as a script, not as its effects).
-- ARGV[4]  tokens wanted (1 .. capacity)
-- ARGV[5]  '1': grant as many as there are, up to the wanted (a gateway's lease);
--          '0': all or nothing (one request)
-- Returns  {granted, micro-tokens left, µs until the refusal would be granted (0 if granted)}
--          or an error reply `ERR invalid `<name>`: ...` naming the first bad argument.
--
-- Every argument is checked before the first command: Redis does not roll a script back,
-- so a script that failed half way would leave its writes behind. Numbers must be plain
-- decimal integers ('1e3', '1.5', ' 5', '-5' and '0x10' are refused, not read as numbers).
--
-- The capacity and the rate come with each call and the bucket stores neither: a bucket
-- holding more than the capacity it is now given is cut down to it at once (a lowered
-- capacity never grants the old tokens), and the refill since the bucket's last update is
-- counted at the rate given now.
--
-- All arithmetic stays on integers below 2^53, which Lua's doubles hold exactly; the only
-- product that can exceed it is capped at the capacity, and rounding cannot cross that cap.

local M = 1000000

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

if #KEYS ~= 1 or #ARGV ~= 5 then
  return redis.error_reply(string.format(
    'ERR token_bucket.lua takes 1 key and 5 arguments, got %d and %d', #KEYS, #ARGV))
end
local capacity_tokens, rate, now, wanted, err
capacity_tokens, err = int_arg(1, 'capacity', 1, 1000000000)
if err then return err end
rate, err = int_arg(2, 'ratePerSec', 1, 1000000000)
if err then return err end
now, err = int_arg(3, 'nowUs', 0, 4503599627370496)
if err then return err end
wanted, err = int_arg(4, 'wanted', 1, capacity_tokens)
if err then return err end
if ARGV[5] ~= '0' and ARGV[5] ~= '1' then
  return refuse('partial', 'must be 0 or 1', ARGV[5])
end
local partial = ARGV[5] == '1'
local capacity = capacity_tokens * M

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

local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  -- A missing (or expired) bucket is a full one.
  tokens = capacity
  ts = now
end
-- A lowered capacity caps what the bucket holds at once.
tokens = math.min(capacity, tokens)
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
-- key must not vanish early when the two disagree a little. tokens <= capacity here, so
-- the time to full is never negative (a negative TTL would delete the key at once, and the
-- bucket would come back full).
redis.call('PEXPIRE', KEYS[1], ceil_div(ceil_div(capacity - tokens, rate), 1000) + 1000)
return {granted, tokens, retry}
