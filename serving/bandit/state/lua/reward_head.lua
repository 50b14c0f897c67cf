-- Shared head of both reward scripts: the decision is still pending (KEYS[1]) and not
-- yet rewarded (HSETNX on KEYS[2]: once only); the reward joins the log stream KEYS[3].
-- ARGV: row, reward, now, decision id, discount, byte offset of the arm's statistics,
-- increment (packed little-endian doubles; empty: nothing to learn), state size in bytes.
-- Returns 1 recorded, 0 unknown or expired decision, -1 already rewarded.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return -1 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
redis.call('XADD', KEYS[3], '*', 'id', ARGV[4], 'reward', ARGV[2], 't', ARGV[3])
local inc = ARGV[7]
if #inc == 0 then return 1 end
