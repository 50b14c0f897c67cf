-- Discounted learning: every statistic decays (stats = discount * stats), the arm's slice
-- then gains the increment; the state blob KEYS[4] and its version KEYS[5] change together.
local gamma, off, total = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[8])
local cur = redis.call('GET', KEYS[4])
if (not cur) or (#cur ~= total) then cur = string.rep(string.char(0), total) end
local parts = {}
local lo, hi = off, off + #inc
local i = 0
while i < total do
  local v = struct.unpack('<d', cur, i + 1) * gamma
  if i >= lo and i < hi then v = v + struct.unpack('<d', inc, i - lo + 1) end
  parts[#parts + 1] = struct.pack('<d', v)
  i = i + 8
end
redis.call('SET', KEYS[4], table.concat(parts))
redis.call('INCR', KEYS[5])
return 1
