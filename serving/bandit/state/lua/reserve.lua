-- Contact caps for a group of reservations, in queue order, as one atomic step: per
-- customer the decision times still inside the window; a contact is allowed (and its
-- time recorded) while fewer than cap remain. KEYS[1] only names the hash slot.
-- ARGV: key prefix, then per reservation: now, window_s, cap, count, then count ids.
-- Returns one 1 (allowed) or 0 (capped) per id, in order.
local prefix = ARGV[1]
local out = {}
local j = 2
while j <= #ARGV do
  local now_s, now = ARGV[j], tonumber(ARGV[j])
  local window, cap, count = tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2]), tonumber(ARGV[j + 3])
  local px = math.ceil(window * 1000)
  for k = j + 4, j + 3 + count do
    local key = prefix .. ARGV[k]
    local v = redis.call('GET', key)
    local kept = {}
    if v then
      for t in string.gmatch(v, '[^,]+') do
        if tonumber(t) > now - window then kept[#kept + 1] = t end
      end
    end
    if #kept < cap then
      kept[#kept + 1] = now_s
      redis.call('SET', key, table.concat(kept, ','), 'PX', px)
      out[#out + 1] = 1
    else
      out[#out + 1] = 0
    end
  end
  j = j + 4 + count
end
return out
