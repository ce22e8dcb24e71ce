-- sessions.lua: the live-session layout, as the accept script reads and writes it.
-- A prelude (functions only), loaded in front of accept.lua (``collector.buffer.ACCEPT``).
-- Its Python twin is trackhouse/session_ids.py; tests/collector/test_lua_scripts.py runs
-- both on the same inputs.
--   session_at(value, ts, idle) -> start, last seen: of the session a "start ms:last seen ms"
--     value holds, when still live at ts (ms) for an idle timeout of idle ms; else nil
--   session_value(start, last) -> the "start ms:last seen ms" value
--   session_id(project, device, start) -> the session's UUID: sha1("project:device:start")
--     laid out as a version 5, RFC 4122 variant UUID

local function session_at(value, ts, idle)
  if not value then
    return nil
  end
  local sep = string.find(value, ':', 1, true)
  local start, seen = tonumber(string.sub(value, 1, sep - 1)), tonumber(string.sub(value, sep + 1))
  if ts - seen <= idle then
    return start, seen
  end
  return nil
end

local function session_value(start, last)
  return string.format('%d:%d', start, last)
end

local function session_id(project, device, start)
  local h = redis.sha1hex(project .. ':' .. device .. ':' .. string.format('%d', start))
  local variant = string.format('%x', 8 + (tonumber(string.sub(h, 17, 17), 16) % 4))
  return string.sub(h, 1, 8) .. '-' .. string.sub(h, 9, 12) .. '-5' .. string.sub(h, 14, 16)
    .. '-' .. variant .. string.sub(h, 18, 20) .. '-' .. string.sub(h, 21, 32)
end
