-- Seed-style seat hold, the Lua design TQ.HOLD replaces (benchmark baseline).
-- KEYS[1] = seat status hash (field = seat), KEYS[2] = inventory counter,
-- KEYS[3] = hold key of this seat
-- ARGV[1] = seat, ARGV[2] = user
-- Reply: {1, inventory left} or {0, 'SEAT_UNAVAILABLE' | 'SOLD_OUT'}.
local status = redis.call('HGET', KEYS[1], ARGV[1])
if status == 'HELD' or status == 'SOLD' then
  return {0, 'SEAT_UNAVAILABLE'}
end
local left = redis.call('DECR', KEYS[2])
if left < 0 then
  redis.call('INCR', KEYS[2])
  return {0, 'SOLD_OUT'}
end
redis.call('HSET', KEYS[1], ARGV[1], 'HELD')
redis.call('SETEX', KEYS[3], 300, ARGV[2])
return {1, left}
