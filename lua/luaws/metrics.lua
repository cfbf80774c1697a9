-- SPDX-License-Identifier: MIT
--
-- luaws.metrics: a server's counts in the Prometheus text exposition format
-- (version 0.0.4), for server:route_metrics(path) and the metrics option.
--
-- The counting is the C core's (csrc/io/metrics.h and struct conn_stats:
-- counted where it happens); this file only names and formats it. Names
-- follow Prometheus conventions: a luaws_ prefix, counters end in _total,
-- times are seconds and sizes bytes. Every series of one scrape comes from
-- one server in one process: with luaws.run{workers = N}, each worker
-- answers for itself and labels every series worker="K" (a scrape reaches
-- whichever worker accepted it; see docs/deploy.md for scraping each one).
--
-- What it does not do: keep state (each scrape reads the counters anew),
-- offer custom metrics, or speak the OpenMetrics or protobuf formats.

local core = require "luaws.core"

local concat, fmt, sort, tostring, pairs = table.concat, string.format, table.sort, tostring, pairs

local M = {}

M.CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

-- A number as the format writes it: integers without a fraction, +Inf.
local function num(v)
  if v == math.huge then return "+Inf" end
  if math.type(v) == "integer" then return tostring(v) end
  if v == math.floor(v) and v > -2^53 and v < 2^53 then return fmt("%d", v) end
  for p = 15, 16 do   -- the shortest that reads back as the same double
    local s = fmt("%." .. p .. "g", v)
    if tonumber(s) == v then return s end
  end
  return fmt("%.17g", v)
end

-- {k = v} -> 'k="v",...' in key order, values escaped (\, ", newline).
local function labels(base, extra)
  local all, keys = {}, {}
  for k, v in pairs(base) do all[k] = v end
  for k, v in pairs(extra or {}) do all[k] = v end
  for k in pairs(all) do keys[#keys + 1] = k end
  if #keys == 0 then return "" end
  sort(keys)
  local out = {}
  for i, k in ipairs(keys) do
    local v = tostring(all[k]):gsub("\\", "\\\\"):gsub("\n", "\\n"):gsub('"', '\\"')
    out[i] = k .. '="' .. v .. '"'
  end
  return "{" .. concat(out, ",") .. "}"
end

--[[ M.render(server) -> text
  The exposition of server (a luaws.listen server): the totals of
  server:stats(), what server._c:metrics() counts, the backplane's state
  when the server has one. ]]
function M.render(server)
  local st, m = server._c:stats(), server._c:metrics()
  local wid = core.worker_id()
  local base = wid and { worker = wid } or {}
  local out = {}
  local function family(name, kind, help)
    out[#out + 1] = fmt("# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
  end
  local function sample(name, v, extra)
    out[#out + 1] = name .. labels(base, extra) .. " " .. num(v) .. "\n"
  end
  local function one(name, kind, help, v)
    family(name, kind, help)
    sample(name, v)
  end
  local function by(name, help, label, t)
    family(name, "counter", help)
    local keys = {}
    for k in pairs(t) do if k ~= "other" then keys[#keys + 1] = k end end
    sort(keys)
    for _, k in ipairs(keys) do sample(name, t[k], { [label] = k }) end
    sample(name, t.other or 0, { [label] = "other" })
  end
  local function histogram(name, help, h)
    family(name, "histogram", help)
    for i, le in ipairs(h.le) do sample(name .. "_bucket", h.counts[i], { le = num(le) }) end
    sample(name .. "_bucket", h.count, { le = "+Inf" })
    sample(name .. "_sum", h.sum)
    sample(name .. "_count", h.count)
  end

  one("luaws_connections_open", "gauge", "WebSocket connections open now (upgraded, not yet closed).", st.connections)
  one("luaws_connections_pending", "gauge", "Accepted connections still in their HTTP stage.", st.pending)
  one("luaws_connections_accepted_total", "counter", "Sockets accepted.", st.accepted)
  one("luaws_upgrades_total", "counter", "Opening handshakes completed (101 sent).", st.upgraded)
  -- every refusal a status says: upgrade requests and plain HTTP alike, the
  -- 503s past max_connections and the TLS port's 400 to plain HTTP;
  -- "other" holds the statuses not listed
  local refused, listed = {}, 0
  for k, v in pairs(m.refused) do
    if k ~= "other" then refused[k] = v; listed = listed + v end
  end
  refused.other = st.rejected - listed
  by("luaws_handshakes_rejected_total", "Requests refused with a 4xx or 5xx status, by status.", "status", refused)
  one("luaws_messages_received_total", "counter", "WebSocket messages received.", st.messages_in)
  one("luaws_messages_sent_total", "counter", "WebSocket messages sent.", st.messages_out)
  one("luaws_bytes_received_total", "counter", "Message payload bytes received.", st.bytes_in)
  one("luaws_bytes_sent_total", "counter", "Message payload bytes sent.", st.bytes_out)
  by("luaws_closes_total", "WebSocket connections closed, by the close code reported (1006: no close frame).",
    "code", m.closes)
  one("luaws_send_queue_bytes", "gauge", "Bytes waiting in the send queues of all connections now.", m.send_queue_bytes)
  histogram("luaws_handshake_duration_seconds", "From accept to the 101 of an upgraded connection.", m.handshake)
  histogram("luaws_close_duration_seconds", "From the start of a close to the socket closed.", m.close)
  family("luaws_tls_handshakes_total", "counter", "TLS handshakes, by result.")
  sample("luaws_tls_handshakes_total", m.tls_handshakes, { result = "ok" })
  sample("luaws_tls_handshakes_total", m.tls_failed, { result = "failed" })
  one("luaws_proxy_protocol_errors_total", "counter", "Connections dropped for a PROXY header that was not valid.",
    m.proxy_errors)
  if st.backplane_up ~= nil then
    one("luaws_backplane_up", "gauge", "1 while the Redis backplane is connected.", st.backplane_up and 1 or 0)
    one("luaws_backplane_published_total", "counter", "Publishes sent to the backplane.", st.backplane_published)
    one("luaws_backplane_received_total", "counter", "Publishes received from the backplane.", st.backplane_received)
    one("luaws_backplane_dropped_total", "counter", "Publishes dropped while the backplane was down or full.",
      st.backplane_dropped)
    one("luaws_backplane_reconnects_total", "counter", "Reconnections to the backplane.", st.backplane_reconnects)
  end
  return concat(out)
end

return M
