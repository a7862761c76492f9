"""The Lua scripts of the Redis broker: each one is an atomic step across its keys.

Every key lives under one hash tag (`{prefix}:`), so the scripts also run on Redis Cluster
(all of Lykta's ephemeral state sits in one slot). Key names are built inside a script from
the base passed as its first argument; `KEYS` names the keys the caller knows in advance.
Times come from Redis (`TIME`) where a script needs one, so processes with skewed clocks agree.
"""

from __future__ import annotations

# KEYS: chat, queue, line set. ARGV: limit, the priority's first score and the next
# priority's, id, ttl, tie step, field, value, ... The chat is queued at its priority's first
# score plus Redis's clock now (its `queued_at`), never level with or ahead of one queued
# before it at that priority: queue order is arrival order, whichever process took the visitor.
# Returns {position, queued_at} (as text: a Lua number would lose its fraction), or {-1}.
CREATE_CHAT = """
if redis.call('zcard', KEYS[2]) >= tonumber(ARGV[1]) then return {-1} end
local t = redis.call('time')
local base = tonumber(ARGV[2])
local score = base + tonumber(t[1]) + tonumber(t[2]) / 1000000
local last = redis.call('zrevrangebyscore', KEYS[2], '(' .. ARGV[3], ARGV[2], 'WITHSCORES',
  'LIMIT', 0, 1)
if last[2] and tonumber(last[2]) >= score then score = tonumber(last[2]) + tonumber(ARGV[6]) end
local at = string.format('%.17g', score - base)
redis.call('hset', KEYS[1], unpack(ARGV, 7))
redis.call('hset', KEYS[1], 'queued_at', at)
redis.call('expire', KEYS[1], ARGV[5])
redis.call('zadd', KEYS[2], string.format('%.17g', score), ARGV[4])
redis.call('expire', KEYS[2], ARGV[5])
redis.call('sadd', KEYS[3], ARGV[4])
redis.call('expire', KEYS[3], ARGV[5])
return {redis.call('zrank', KEYS[2], ARGV[4]) + 1, at}
"""

# KEYS: chat. ARGV: base, id, ttl, ",expected,states,", offered_to, counsellor, dequeue,
# enqueue score, assign staff, capacity, release staff, live states, expected continuity,
# staff owed the wrap-up, wrap-up window ms, n, field, value, ..., m, deleted field, ...,
# expected interpreter field ('' : any, '-': none)
TRANSITION = """
local chat, base, id, ttl = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local cur = redis.call('hmget', chat, 'state', 'offered_to', 'counsellor_id', 'line')
if not cur[1] then return {'missing'} end
if not string.find(ARGV[4], ',' .. cur[1] .. ',', 1, true) then return {'state'} end
if ARGV[5] ~= '' and cur[2] ~= ARGV[5] then return {'mismatch'} end
if ARGV[6] ~= '' and cur[3] ~= ARGV[6] then return {'mismatch'} end
if ARGV[13] ~= '' and redis.call('hget', chat, 'continuity') ~= ARGV[13] then
  return {'mismatch'}
end
do
  -- The expected interpreter field comes last, after the changes ('-': must be absent).
  local n0 = tonumber(ARGV[16])
  local want = ARGV[18 + 2 * n0 + tonumber(ARGV[17 + 2 * n0])]
  if want and want ~= '' and (redis.call('hget', chat, 'interpreter') or '-') ~= want then
    return {'mismatch'}
  end
end
local assign = ARGV[9]
if assign ~= '' then
  local load = base .. 'load:' .. assign
  if redis.call('sismember', load, id) == 0
      and redis.call('scard', load) >= tonumber(ARGV[10]) then
    return {'capacity'}
  end
end
local old_line, new_line, new_state = cur[4], cur[4], cur[1]
local n = tonumber(ARGV[16])
local i = 17
if n > 0 then
  local set = {}
  for _ = 1, n do
    local f, v = ARGV[i], ARGV[i + 1]
    if f == 'line' then new_line = v elseif f == 'state' then new_state = v end
    set[#set + 1] = f
    set[#set + 1] = v
    i = i + 2
  end
  redis.call('hset', chat, unpack(set))
end
local m = tonumber(ARGV[i])
i = i + 1
if m > 0 then
  local del = {}
  for _ = 1, m do
    del[#del + 1] = ARGV[i]
    i = i + 1
  end
  redis.call('hdel', chat, unpack(del))
end
if ARGV[7] == '1' then redis.call('zrem', base .. 'q:' .. old_line, id) end
if new_line ~= old_line then
  redis.call('srem', base .. 'lc:' .. old_line, id)
  redis.call('sadd', base .. 'lc:' .. new_line, id)
  redis.call('expire', base .. 'lc:' .. new_line, ttl)
end
if not string.find(ARGV[12], ',' .. new_state .. ',', 1, true) then
  redis.call('srem', base .. 'lc:' .. new_line, id)
end
if ARGV[8] ~= '' then
  local queue = base .. 'q:' .. new_line
  redis.call('zadd', queue, ARGV[8], id)
  redis.call('expire', queue, ttl)
end
if ARGV[11] ~= '' then redis.call('srem', base .. 'load:' .. ARGV[11], id) end
if assign ~= '' then
  local load = base .. 'load:' .. assign
  redis.call('sadd', load, id)
  redis.call('expire', load, ttl)
end
if ARGV[14] ~= '' then
  -- The counsellor owes this chat's wrap-up: listed in the same step as the end, by
  -- when it lapses (the sorted set OWED_WRAPUPS reads).
  local t = redis.call('time')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local owed, window = base .. 'wu:' .. ARGV[14], tonumber(ARGV[15])
  redis.call('zadd', owed, now + window, id)
  redis.call('zremrangebyscore', owed, '-inf', now)
  if redis.call('pttl', owed) < window then redis.call('pexpire', owed, window) end
end
return {'ok', redis.call('hgetall', chat)}
"""

# KEYS: chat, transcript stream, dedupe hash[, quota counter]. ARGV: counsellor (or empty),
# ttl ms, channel to publish stored entries' events on, quota limit and quota window ms (or
# empty) then, from ARGV[6], five per entry: seq, entry, dedupe key, event payload (each may
# be empty), '1' if the entry goes at the payload's end (sent once, not twice). The entries are
# taken in order; after a conflict (a number already taken) the rest are not looked at. The
# quota is checked before and counted after storing each, as `incr` counts. Returns a flat
# list: seq, status per entry looked at.
# Per entry only the XADD: the dedupe keys are read in one HMGET, the quota once and counted
# here, both are written once at the end, and the stored entries' events go out in one
# PUBLISH (a script runs alone, so nothing can come between). Redis runs one script at a
# time for every process, and this one runs for every message.
APPEND = """
local out = {}
local cur = redis.call('hmget', KEYS[1], 'state', 'counsellor_id', 'last_seq', 'interpreter')
if not cur[1] or cur[1] == 'ended' then
  for i = 6, #ARGV, 5 do out[#out + 1] = 0; out[#out + 1] = 'ended' end
  return out
end
if ARGV[1] ~= '' then
  -- 'i:<staff>' is an interpreter, who must be in the chat; anything else its counsellor.
  local holder, who = cur[2], ARGV[1]
  if string.sub(who, 1, 2) == 'i:' then holder, who = cur[4], 'in:' .. string.sub(who, 3) end
  if cur[1] ~= 'active' or holder ~= who then
    for i = 6, #ARGV, 5 do out[#out + 1] = 0; out[#out + 1] = 'forbidden' end
    return out
  end
end
local last = tonumber(cur[3] or '0')
local stored = 0
local used, limit = 0, 0
if KEYS[4] then
  used, limit = tonumber(redis.call('get', KEYS[4]) or '0'), tonumber(ARGV[4])
end
-- The entries' dedupe keys already known, in one read (in slices: unpack has a limit on how
-- many values it returns); those stored by this call are written to the hash at the end.
local asked, known = {}, {}
for i = 6, #ARGV, 5 do
  if ARGV[i + 2] ~= '' then asked[#asked + 1] = ARGV[i + 2] end
end
for j = 1, #asked, 200 do
  local last_j = math.min(j + 199, #asked)
  local found = redis.call('hmget', KEYS[3], unpack(asked, j, last_j))
  for n = 1, last_j - j + 1 do
    if found[n] then known[asked[j + n - 1]] = found[n] end
  end
end
local marks, events = {}, {}
for i = 6, #ARGV, 5 do
  local seq, status = last, 'ok'
  local key = ARGV[i + 2]
  local seen = key ~= '' and known[key]
  if seen then
    seq, status = tonumber(seen), 'duplicate'
  elseif KEYS[4] and used >= limit then
    seq, status = 0, 'limited'
  elseif tonumber(ARGV[i]) ~= last + 1 then
    out[#out + 1] = last; out[#out + 1] = 'conflict'
    break
  else
    last = last + 1
    seq = last
    stored = stored + 1
    used = used + 1
    redis.call('xadd', KEYS[2], ARGV[i] .. '-0', 'e', ARGV[i + 1])
    if key ~= '' then
      known[key] = ARGV[i]
      marks[#marks + 1] = key; marks[#marks + 1] = ARGV[i]
    end
    if ARGV[i + 3] ~= '' then
      local event = ARGV[i + 3]
      if ARGV[i + 4] == '1' then event = event .. ARGV[i + 1] end
      events[#events + 1] = event
    end
  end
  out[#out + 1] = seq; out[#out + 1] = status
end
-- The events of what was stored, in one message: one read and one parse for a burst in
-- every process that follows the chat ('*' then each as <length>:<event>).
if #events == 1 then
  redis.call('publish', ARGV[3], events[1])
elseif #events > 1 then
  local framed = {}
  for n = 1, #events do framed[n] = #events[n] .. ':' .. events[n] end
  redis.call('publish', ARGV[3], '*' .. table.concat(framed))
end
if stored > 0 then
  local ttl = redis.call('pttl', KEYS[1])
  if ttl < 0 then ttl = tonumber(ARGV[2]) end
  redis.call('hset', KEYS[1], 'last_seq', last)
  redis.call('pexpire', KEYS[2], ttl)
  for j = 1, #marks, 200 do
    redis.call('hset', KEYS[3], unpack(marks, j, math.min(j + 199, #marks)))
  end
  if #marks > 0 or redis.call('exists', KEYS[3]) == 1 then redis.call('pexpire', KEYS[3], ttl) end
  if KEYS[4] then
    local value = redis.call('incrby', KEYS[4], stored)
    if value == stored or redis.call('pttl', KEYS[4]) < 0 then
      redis.call('pexpire', KEYS[4], ARGV[5])
    end
  end
end
return out
"""

# KEYS: chat, transcript, dedupe. ARGV: base, id.
DELETE_CHAT = """
local base, id = ARGV[1], ARGV[2]
local cur = redis.call('hmget', KEYS[1], 'line', 'offered_to', 'counsellor_id', 'interpreter')
if cur[1] then
  redis.call('zrem', base .. 'q:' .. cur[1], id)
  redis.call('srem', base .. 'lc:' .. cur[1], id)
end
if cur[2] then redis.call('srem', base .. 'load:' .. cur[2], id) end
if cur[3] then redis.call('srem', base .. 'load:' .. cur[3], id) end
-- An interpreter asked ('asked:<staff>') or in the chat ('in:<staff>') counts it too.
local interpreter = cur[4] and string.match(cur[4], '^%a+:(.+)$')
if interpreter then redis.call('srem', base .. 'load:' .. interpreter, id) end
redis.call('del', KEYS[1], KEYS[2], KEYS[3])
return 1
"""

# KEYS: queue. ARGV: base, last index (-1: all). Drops entries whose chat expired.
QUEUE = """
local items = redis.call('zrange', KEYS[1], 0, tonumber(ARGV[2]), 'WITHSCORES')
local out = {}
for i = 1, #items, 2 do
  if redis.call('exists', ARGV[1] .. 'chat:' .. items[i]) == 1 then
    out[#out + 1] = items[i]
    out[#out + 1] = items[i + 1]
  else
    redis.call('zrem', KEYS[1], items[i])
  end
end
return out
"""

# KEYS: deadlines. ARGV: now, limit. Each due deadline is removed by the one call that sees it.
POP_DUE = """
local due = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #due > 0 then redis.call('zrem', KEYS[1], unpack(due)) end
return due
"""

# Shared by the presence scripts: move a counsellor between the per-line presence indexes.
_LINES = """
local function unindex(base, id, duty)
  if duty then
    for line, _ in pairs(cjson.decode(duty)) do redis.call('srem', base .. 'lp:' .. line, id) end
  end
end
local function index(base, id, duty, ttl)
  for line, _ in pairs(cjson.decode(duty)) do
    redis.call('sadd', base .. 'lp:' .. line, id)
    redis.call('expire', base .. 'lp:' .. line, ttl)
  end
end
"""

# KEYS: presence. ARGV: base, id, ttl, duty json, field, value, ...
PUT_PRESENCE = (
    _LINES
    + """
local base, id, ttl = ARGV[1], ARGV[2], ARGV[3]
unindex(base, id, redis.call('hget', KEYS[1], 'duty'))
redis.call('del', KEYS[1])
redis.call('hset', KEYS[1], unpack(ARGV, 5))
redis.call('expire', KEYS[1], ttl)
index(base, id, ARGV[4], ttl)
return 1
"""
)

# KEYS: presence. ARGV: base, id, ttl, field, value, ... The whole presence after, or nil.
UPDATE_PRESENCE = (
    _LINES
    + """
local base, id, ttl = ARGV[1], ARGV[2], ARGV[3]
if redis.call('exists', KEYS[1]) == 0 then return false end
for i = 4, #ARGV, 2 do
  if ARGV[i] == 'duty' then
    unindex(base, id, redis.call('hget', KEYS[1], 'duty'))
    index(base, id, ARGV[i + 1], ttl)
  end
end
redis.call('hset', KEYS[1], unpack(ARGV, 4))
return redis.call('hgetall', KEYS[1])
"""
)

# KEYS: presence. ARGV: base, id.
REMOVE_PRESENCE = (
    _LINES
    + """
unindex(ARGV[1], ARGV[2], redis.call('hget', KEYS[1], 'duty'))
redis.call('del', KEYS[1])
return 1
"""
)

# KEYS: line presence index. ARGV: base. Every presence on the line, dropping lapsed ones.
LINE_PRESENCES = """
local out = {}
for _, id in ipairs(redis.call('smembers', KEYS[1])) do
  local fields = redis.call('hgetall', ARGV[1] .. 'pres:' .. id)
  if #fields == 0 then redis.call('srem', KEYS[1], id) else out[#out + 1] = fields end
end
return out
"""

_NOW_MS = """
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: connections, presence. ARGV: connection id, ttl ms, presence ttl s.
CONNECT = (
    _NOW_MS
    + """
local ttl = tonumber(ARGV[2])
redis.call('zadd', KEYS[1], now + ttl, ARGV[1])
redis.call('zremrangebyscore', KEYS[1], '-inf', now)
if redis.call('pttl', KEYS[1]) < ttl then redis.call('pexpire', KEYS[1], ttl) end
redis.call('expire', KEYS[2], ARGV[3])
return 1
"""
)

# KEYS: deadlines, then connections and presence of each lease. ARGV: presence ttl s,
# deadlines ttl s, then per lease: connection id, ttl ms, deadline key, deadline score.
# CONNECT and a deadline's ZADD for many leases in one call (a heartbeat).
RENEW = (
    _NOW_MS
    + """
local leases = (#KEYS - 1) / 2
for i = 0, leases - 1 do
  local conns, pres = KEYS[2 + 2 * i], KEYS[3 + 2 * i]
  local at = 3 + 4 * i
  local ttl = tonumber(ARGV[at + 1])
  redis.call('zadd', conns, now + ttl, ARGV[at])
  redis.call('zremrangebyscore', conns, '-inf', now)
  if redis.call('pttl', conns) < ttl then redis.call('pexpire', conns, ttl) end
  redis.call('expire', pres, ARGV[1])
  redis.call('zadd', KEYS[1], ARGV[at + 3], ARGV[at + 2])
end
redis.call('expire', KEYS[1], ARGV[2])
return leases
"""
)

# KEYS: connections. ARGV: connection id. How many live connections remain.
DISCONNECT = (
    _NOW_MS
    + """
redis.call('zrem', KEYS[1], ARGV[1])
redis.call('zremrangebyscore', KEYS[1], '-inf', now)
return redis.call('zcard', KEYS[1])
"""
)

# KEYS: connection sets. Live connections of each.
CONNECTION_COUNTS = (
    _NOW_MS
    + """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('zcount', key, '(' .. now, '+inf') end
return out
"""
)

# KEYS: a line's live chats. ARGV: base, SSCAN cursor, page size, live states (",a,b,"),
# lease prefix. One page of the line's chats: the cursor for the next, and the chats that are
# live, whose visitor counts as connected, and whose lease has no live connection (the few a
# dead process left behind; nothing else leaves Redis).
UNLEASED_CHATS = (
    _NOW_MS
    + """
local base = ARGV[1]
local page = redis.call('sscan', KEYS[1], ARGV[2], 'COUNT', tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(page[2]) do
  local cur = redis.call('hmget', base .. 'chat:' .. id, 'state', 'visitor_connected')
  if cur[1] and cur[2] ~= '0' and string.find(ARGV[4], ',' .. cur[1] .. ',', 1, true)
    and redis.call('zcount', base .. 'conn:' .. ARGV[5] .. id, '(' .. now, '+inf') == 0 then
    out[#out + 1] = id
  end
end
return {page[1], out}
"""
)

# KEYS: load sets. How many chats count against each counsellor.
STAFF_LOADS = """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('scard', key) end
return out
"""

# KEYS: counter. ARGV: ttl ms.
INCR = """
local value = redis.call('incr', KEYS[1])
if value == 1 or redis.call('pttl', KEYS[1]) < 0 then redis.call('pexpire', KEYS[1], ARGV[1]) end
return value
"""

# KEYS: list. ARGV: value, keep, ttl ms.
PUSH_RECENT = """
redis.call('rpush', KEYS[1], ARGV[1])
redis.call('ltrim', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('pexpire', KEYS[1], ARGV[3])
return 1
"""

# KEYS: owed wrap-ups of a counsellor (a sorted set scored by expiry, written by TRANSITION;
# the key lives as long as its longest entry). Chat ids not lapsed, oldest first.
OWED_WRAPUPS = (
    _NOW_MS
    + """
redis.call('zremrangebyscore', KEYS[1], '-inf', now)
return redis.call('zrange', KEYS[1], 0, -1)
"""
)

# KEYS: the marker. ARGV: a new random value, ttl s. Redis's clock, and the marker's value:
# set by the first process that finds none, kept by every process's health check (a Redis that
# lost its data has none, or one set since by another process). TIME first: it is what the
# caller measures the clock offset by. Its expiry is pushed on only now and then: a health
# check that writes nothing costs no append-only file or replica anything.
EPOCH = """
local t = redis.call('time')
if not redis.call('set', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2])
    and redis.call('ttl', KEYS[1]) < tonumber(ARGV[2]) / 2 then
  redis.call('expire', KEYS[1], ARGV[2])
end
return {t[1], t[2], redis.call('get', KEYS[1])}
"""

# KEYS: held rows of the hour (hash: row id -> row), held hours (sorted set). ARGV: hour,
# ttl, row id, row, ...
HOLD_ROWS = """
redis.call('hset', KEYS[1], unpack(ARGV, 3))
redis.call('expire', KEYS[1], ARGV[2])
redis.call('zadd', KEYS[2], ARGV[1], ARGV[1])
redis.call('expire', KEYS[2], ARGV[2])
return 1
"""

# KEYS: claim of the hour, held rows of the hour. ARGV: claim, ttl ms. {0} while another
# claim is alive, else {1, row id, row, ...}.
CLAIM_HELD = """
if not redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {0} end
local out = redis.call('hgetall', KEYS[2])
table.insert(out, 1, 1)
return out
"""

# KEYS: held rows of the hour, held hours, claim of the hour. ARGV: hour, claim, row id, ...
RELEASE_HELD = """
if #ARGV > 2 then redis.call('hdel', KEYS[1], unpack(ARGV, 3)) end
if redis.call('hlen', KEYS[1]) == 0 then redis.call('zrem', KEYS[2], ARGV[1]) end
if redis.call('get', KEYS[3]) == ARGV[2] then redis.call('del', KEYS[3]) end
return 1
"""

ALL = {
    "create_chat": CREATE_CHAT,
    "transition": TRANSITION,
    "append": APPEND,
    "delete_chat": DELETE_CHAT,
    "queue": QUEUE,
    "pop_due": POP_DUE,
    "put_presence": PUT_PRESENCE,
    "update_presence": UPDATE_PRESENCE,
    "remove_presence": REMOVE_PRESENCE,
    "line_presences": LINE_PRESENCES,
    "connect": CONNECT,
    "renew": RENEW,
    "disconnect": DISCONNECT,
    "connection_counts": CONNECTION_COUNTS,
    "unleased_chats": UNLEASED_CHATS,
    "staff_loads": STAFF_LOADS,
    "incr": INCR,
    "push_recent": PUSH_RECENT,
    "owed_wrapups": OWED_WRAPUPS,
    "epoch": EPOCH,
    "hold_rows": HOLD_ROWS,
    "claim_held": CLAIM_HELD,
    "release_held": RELEASE_HELD,
}
