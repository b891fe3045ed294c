-- Seed-style enqueue, the Lua design TQ.ENQUEUE replaces (benchmark baseline).
-- KEYS[1] = queue stream, KEYS[2] = dedupe key
-- ARGV[1] = token, ARGV[2] = user, ARGV[3] = dedupe window in seconds (default 300)
-- Reply: {1, stream id} on success, {0, 'DUPLICATE'} if the dedupe key exists.
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {0, 'DUPLICATE'}
end
local now = redis.call('TIME')
local ts = now[1] .. string.format('%03d', math.floor(tonumber(now[2]) / 1000))
local id = redis.call('XADD', KEYS[1], '*', 'token', ARGV[1], 'user', ARGV[2], 'ts', ts)
redis.call('SETEX', KEYS[2], tonumber(ARGV[3]) or 300, id)
return {1, id}
