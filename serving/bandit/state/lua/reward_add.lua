-- Undiscounted learning: only the arm's slice of the state blob KEYS[4] is read and
-- rewritten (GETRANGE / SETRANGE), then the version KEYS[5] moves.
local off, total = tonumber(ARGV[6]), tonumber(ARGV[8])
if redis.call('STRLEN', KEYS[4]) ~= total then redis.call('SET', KEYS[4], string.rep(string.char(0), total)) end
local cur = redis.call('GETRANGE', KEYS[4], off, off + #inc - 1)
local parts = {}
local i = 0
while i < #inc do
  parts[#parts + 1] = struct.pack('<d', struct.unpack('<d', cur, i + 1) + struct.unpack('<d', inc, i + 1))
  i = i + 8
end
redis.call('SETRANGE', KEYS[4], off, table.concat(parts))
redis.call('INCR', KEYS[5])
return 1
