-- Seed-style seat release, the Lua design TQ.RELEASE replaces (benchmark baseline).
-- KEYS[1] = seat status hash (field = seat), KEYS[2] = inventory counter,
-- KEYS[3] = hold key of this seat
-- ARGV[1] = seat
-- Reply: {1, inventory now} or {0, 'NOT_HELD'}.
local status = redis.call('HGET', KEYS[1], ARGV[1])
if status ~= 'HELD' then
  return {0, 'NOT_HELD'}
end
redis.call('HSET', KEYS[1], ARGV[1], 'AVAILABLE')
redis.call('DEL', KEYS[3])
local left = redis.call('INCR', KEYS[2])
return {1, left}
