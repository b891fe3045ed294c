-- INFO tq for Prometheus, through redis_exporter's --script option:
--
--   redis_exporter --script contrib/prometheus/tq-metrics.lua
--
-- redis_exporter exports module INFO fields only when it knows their names,
-- so this script hands it every numeric field of the tq sections instead.
-- Each comes out as redis_script_values{key="<field>"}, for example
-- redis_script_values{key="tq_enqueue_latency_p99_us"}.
local info = redis.call('INFO', 'tq')
local pairs_out = {}
for line in string.gmatch(info, '[^\r\n]+') do
  local name, value = string.match(line, '^(tq_[%w_]+):(%-?[%d%.]+)$')
  if name then
    table.insert(pairs_out, name)
    table.insert(pairs_out, value)
  end
end
return pairs_out
