-- SPDX-License-Identifier: MIT
--
-- luaws.options: the one table of option defaults and the one place options
-- are checked, for luaws.listen and luaws.connect alike.
--
-- A connection option (timers, limits, buffer size) means the same on both
-- sides and has one default; listen and connect each add their own few.
-- check() fills the defaults in and raises on a misspelt name, a wrong type
-- or an out-of-range value, naming the function; the C core then takes the
-- table as it is (core_options) and checks nothing but types.

local floor, type, tostring, pairs = math.floor, type, tostring, pairs

local M = {}

local MiB = 1024 * 1024

-- What every connection takes, server or client: name = {default, kind}.
-- nil defaults are "off".
local conn = {
  keep_alive_interval = { 120, "number" },   -- seconds between pings; 0 turns them off
  keep_alive_timeout = { nil, "number" },    -- seconds to wait for the pong; nil waits forever
  idle_timeout = { nil, "number" },          -- seconds with nothing received -> close (1006 "timeout")
  handshake_timeout = { 10, "number" },      -- seconds to finish the opening handshake
  close_timeout = { 5, "number" },           -- seconds a close may take
  max_message_size = { 16 * MiB, "number" }, -- 1009 above it
  max_backpressure = { 16 * MiB, "number" }, -- send queue bytes before closing with 1008
  receive_buffer_size = { 4096, "number" },  -- bytes per read
  check_send_utf8 = { true, "boolean" },     -- ws:send refuses text that is not UTF-8 ("utf8"); false trusts it
  compression = { false, { boolean = true, table = true } },   -- permessage-deflate: false, true or a table (below)
}

-- compression = true | { ... }: each field with its default and range.
-- context_takeover false asks for that side's no_context_takeover.
local compression = {
  threshold = { 128, 0, 2 ^ 31 - 1 },        -- bytes: whole messages shorter go out uncompressed
  level = { 1, 0, 9 },                       -- zlib level: 1 fast .. 9 small (0 stores)
  mem_level = { 8, 1, 9 },                   -- zlib memLevel: the compressor's memory while it runs
  server_max_window_bits = { 15, 8, 15 },
  client_max_window_bits = { 15, 8, 15 },
  server_context_takeover = { true },
  client_context_takeover = { true },
}
M.compression_defaults = {}
for k, v in pairs(compression) do M.compression_defaults[k] = v[1] end

local listen = {
  host = { "localhost", "string" },          -- "*" for every address, IPv4 and IPv6
  port = { 5000, "number" },                 -- 0 picks a free port: server.port tells which
  allowed_origins = { nil, { table = true, string = true, ["function"] = true } },
  protocols = { nil, "table" },              -- subprotocols we speak, in preference order
  static = { nil, "string" },                -- a directory: plain GETs get files from it
  max_connections = { nil, "number" },       -- beyond it: 503
  max_topics = { 100000, "number" },         -- topics with subscribers, per server
  max_topics_per_connection = { 64, "number" },
  backlog = { 511, "number" },
  tls = { nil, "table" },                    -- { certificate = "cert.pem", key = "key.pem" }: wss:// (see check_tls)
  backplane = { nil, "string" },             -- "redis://[user:password@]host[:port][/db]" or "unix:///path?db=N"
  backplane_prefix = { "luaws", "string" },  -- Redis channels are prefix:topic
  on_backplane = { nil, "function" },        -- function(state, detail): "up" / "down"
  max_body_size = { 1 * MiB, "number" },     -- a plain HTTP request's body; 413 above it
  reject = { nil, "function" },              -- function(req, status, reason): each refusal, in place of the log line
  log_refusals = { true, "boolean" },        -- one log line per refusal (4xx/5xx luaws chose); false: none
  unix = { nil, "string" },                  -- a unix-domain socket path to listen on, in place of host/port
  unix_mode = { nil, { number = true, string = true } }, -- its permissions: "0660" (octal text) or 432
  trusted_proxies = { nil, "table" },        -- {"127.0.0.1", "10.0.0.0/8", "::1", "unix"}: whose X-Forwarded-For / Forwarded count
  proxy_protocol = { false, "boolean" },     -- a PROXY protocol v1/v2 header comes first (HAProxy, AWS NLB)
  access_log = { false, { boolean = true, string = true } }, -- true or "logfmt" / "json": a line per upgrade and per close
  metrics = { nil, "string" },               -- a path ("/metrics") serving Prometheus text (server:route_metrics)
}

local connect = {
  headers = { nil, "table" },                -- extra request headers
  protocols = { nil, "table" },              -- subprotocols to offer
  origin = { nil, "string" },
  timeout = { nil, "number" },               -- the handshake's timeout (default handshake_timeout)
  tls = { nil, "table" },                    -- { verify = true, ca = "ca.pem", certificate =, key = } for wss://
}

for k, v in pairs(conn) do listen[k], connect[k] = v, v end

-- luaws.defaults: every listen option with its default (nil: off).
M.defaults = {}
for k, v in pairs(listen) do M.defaults[k] = v[1] end

local function describe(want)
  if type(want) == "string" then return want end
  local names = {}
  for _, k in ipairs { "boolean", "number", "string", "table", "function" } do
    if want[k] then names[#names + 1] = k end
  end
  if #names == 1 then return names[1] end
  return table.concat(names, ", ", 1, #names - 1) .. " or " .. names[#names]
end

--[[ check_compression(v, fname, level [, what]) -> false | t
  The compression option (false, true or a table of the fields above),
  checked: raises (at level) on an unknown field, a wrong type, a number
  out of range, naming fname and the option (what: "compression" unless
  told). Returns false, or the form the C core reads: every field, numbers
  integers, server_/client_no_context_takeover in place of the
  *_context_takeover booleans. ]]
function M.check_compression(v, fname, level, what)
  level = (level or 2) + 1
  what = what or "compression"
  if v == false or v == nil then return false end
  if v == true then v = {} end
  if type(v) ~= "table" then
    error(("%s: option '%s' must be a boolean or table, got %s"):format(fname, what, type(v)), level)
  end
  local o = {}
  for k, x in pairs(v) do
    local s = compression[k]
    if not s then error(("%s: unknown option '%s.%s'"):format(fname, what, tostring(k)), level) end
    if s[2] then
      if type(x) ~= "number" or x ~= floor(x) or x < s[2] or x > s[3] then
        error(("%s: option '%s.%s' must be an integer %d-%d, got %s"):format(fname, what, k, s[2], s[3],
          tostring(x)), level)
      end
    elseif type(x) ~= "boolean" then
      error(("%s: option '%s.%s' must be a boolean, got %s"):format(fname, what, k, type(x)), level)
    end
    o[k] = x
  end
  for k, s in pairs(compression) do
    if o[k] == nil then o[k] = s[1] end
  end
  return {
    threshold = floor(o.threshold), level = floor(o.level), mem_level = floor(o.mem_level),
    server_max_window_bits = floor(o.server_max_window_bits),
    client_max_window_bits = floor(o.client_max_window_bits),
    server_no_context_takeover = not o.server_context_takeover,
    client_no_context_takeover = not o.client_context_takeover,
  }
end

-- The fields of one certificate in a server's tls option.
local tls_cert_fields = { certificate = true, key = true, server_name = true }

--[[ check_tls(t, fname, level)
  A server's tls option: one certificate, { certificate = "cert.pem", key =
  "key.pem" [, server_name = NAME | {NAMES}] }, or a list of such tables
  (chosen by the name the client asks for, SNI; the first without
  server_name is the default, and one without server_name answers for the
  names in its certificate), with ca = "ca.pem" and verify_client = true |
  "optional" beside the certificate fields or the list. A name is a host
  name or "*.example.com" (a wildcard is the whole leftmost label). Raises
  (at level) naming fname; the files are read by the C core. ]]
function M.check_tls(t, fname, level)
  level = (level or 2) + 1
  local function bad(msg) error(("%s: option 'tls' %s"):format(fname, msg), level + 1) end
  if type(t) ~= "table" then bad("must be a table, got " .. type(t)) end
  local list = t.certificate == nil and t.key == nil and t[1] ~= nil
  for k in pairs(t) do
    if not (k == "ca" or k == "verify_client" or (list and math.type(k) == "integer") or (not list and tls_cert_fields[k])) then
      bad(("has an unknown field '%s'"):format(tostring(k)))
    end
  end
  local entries = list and t or { t }
  for i, e in ipairs(entries) do
    local what = list and ("entry %d "):format(i) or ""
    if type(e) ~= "table" then bad(("%smust be a table, got %s"):format(what, type(e))) end
    if list then
      for k in pairs(e) do
        if not tls_cert_fields[k] then
          bad(("%shas an unknown field '%s'%s"):format(what, tostring(k),
            (k == "ca" or k == "verify_client") and " (it goes beside the list)" or ""))
        end
      end
    end
    if type(e.certificate) ~= "string" or type(e.key) ~= "string" then
      bad(what .. "needs certificate and key (PEM file names)")
    end
    local names = e.server_name
    if type(names) == "string" then names = { names } end
    if names ~= nil and (type(names) ~= "table" or #names == 0) then
      bad(what .. "server_name must be a host name or a list of them")
    end
    for _, n in ipairs(names or {}) do
      if type(n) ~= "string" or not n:match("^[%w%-%.%*_]+$") or n:find("*", 2, true)
        or (n:sub(1, 1) == "*" and not n:match("^%*%.[^.]+%.[^.]")) then
        bad(("%sserver_name %s: a host name, or *.name.tld (a wildcard is the whole leftmost label)")
          :format(what, type(n) == "string" and ("%q"):format(n) or tostring(n)))
      end
    end
  end
  local v = t.verify_client
  if v ~= nil and v ~= true and v ~= false and v ~= "optional" then
    bad("verify_client must be true, false or \"optional\"")
  end
  if t.ca ~= nil and type(t.ca) ~= "string" then bad("ca must be a PEM file name") end
  if v and not t.ca then bad("verify_client needs ca (a PEM file of the CAs client certificates must chain to)") end
  if t.ca and not v then bad("ca is for verify_client (true or \"optional\"), which is not set") end
end

-- The fields of a client's tls option.
local tls_client_fields = { verify = "boolean", ca = "string", certificate = "string", key = "string" }

--[[ check_client_tls(t, fname, level)
  A client's tls option: verify (default true: the server's certificate
  must chain to ca, or to the system store without ca), certificate and key
  (PEM files, both or neither: what it presents to a server that asks for a
  client certificate). Raises (at level) naming fname. ]]
function M.check_client_tls(t, fname, level)
  level = (level or 2) + 1
  local function bad(msg) error(("%s: option 'tls' %s"):format(fname, msg), level + 1) end
  for k, v in pairs(t) do
    local want = tls_client_fields[k]
    if not want then bad(("has an unknown field '%s'"):format(tostring(k))) end
    if type(v) ~= want then bad(("field '%s' must be a %s, got %s"):format(k, want, type(v))) end
  end
  if (t.certificate == nil) ~= (t.key == nil) then bad("needs certificate and key together") end
end

--[[ check_deploy(o, fname, level)
  The listen options for running behind a proxy (unix, unix_mode,
  trusted_proxies, proxy_protocol) and for being watched (access_log,
  metrics). Normalises unix_mode to a number and trusted_proxies to their
  one written form ("10.1.2.3/8" is "10.0.0.0/8"). Raises (at level). ]]
function M.check_deploy(o, fname, level)
  level = level + 1
  local function bad(msg) error(("%s: option %s"):format(fname, msg), level) end
  if o.unix_mode ~= nil then
    local m = o.unix_mode
    if type(m) == "string" then m = m:match("^0?[0-7][0-7][0-7]$") and tonumber(m, 8) end
    if math.type(m) ~= "integer" or m < 0 or m > 511 then
      bad("'unix_mode' must be permissions 0-0777: octal text such as \"0660\", or the number")
    end
    if not o.unix then bad("'unix_mode' is for a unix socket: set 'unix' too") end
    o.unix_mode = m
  end
  if o.unix == "" then bad("'unix' must be a path") end
  if o.trusted_proxies then
    local list = {}
    for i, e in ipairs(o.trusted_proxies) do
      local c = e == "unix" and "unix" or type(e) == "string" and require("luaws.core").cidr(e)
      if not c then
        bad(("'trusted_proxies' entry %d (%s) is not an address, a CIDR range or \"unix\""):format(i,
          type(e) == "string" and ("%q"):format(e) or tostring(e)))
      end
      list[i] = c
    end
    for k in pairs(o.trusted_proxies) do
      if math.type(k) ~= "integer" or k < 1 or k > #list then bad("'trusted_proxies' must be a list") end
    end
    o.trusted_proxies = list
  end
  if o.proxy_protocol and o.tls then
    bad("'proxy_protocol' does not go with 'tls' yet: end TLS at the balancer, or use one without PROXY")
  end
  local al = o.access_log
  if al ~= false and al ~= true and al ~= "logfmt" and al ~= "json" then
    bad("'access_log' must be true, false, \"logfmt\" or \"json\"")
  end
  if o.metrics ~= nil and o.metrics:sub(1, 1) ~= "/" then bad("'metrics' must be a path beginning with /") end
end

--[[ check(opts, which, fname, level) -> o
  which: "listen" or "connect". Returns a new table with every option of
  that function, defaults filled in. Raises (at level) on a name it does not
  know, a wrong type, a negative or non-integer number where one is needed. ]]
function M.check(opts, which, fname, level)
  local spec = which == "listen" and listen or connect
  level = (level or 2) + 1
  if type(opts) ~= "table" then
    error(("bad argument #%d to '%s' (table expected, got %s)"):format(which == "listen" and 1 or 2,
      fname, type(opts)), level)
  end
  local o = {}
  for k, v in pairs(opts) do
    local s = spec[k]
    if not s then error(("%s: unknown option '%s'"):format(fname, tostring(k)), level) end
    local want, t = s[2], type(v)
    if (type(want) == "string" and t ~= want) or (type(want) == "table" and not want[t]) then
      error(("%s: option '%s' must be a %s, got %s"):format(fname, k, describe(want), t), level)
    end
    if t == "number" and (v < 0 or v ~= v) then
      error(("%s: option '%s' must not be negative"):format(fname, k), level)
    end
    o[k] = v
  end
  for k, s in pairs(spec) do
    if o[k] == nil then o[k] = s[1] end
  end
  if o.receive_buffer_size < 256 then
    error(fname .. ": option 'receive_buffer_size' must be at least 256", level)
  end
  if o.max_message_size < 1 then error(fname .. ": option 'max_message_size' must be at least 1", level) end
  o.compression = M.check_compression(o.compression, fname, level)
  if which == "listen" then
    if o.port ~= floor(o.port) or o.port > 65535 then
      error(fname .. ": option 'port' must be an integer 0-65535", level)
    end
    if o.tls then M.check_tls(o.tls, fname, level) end
    if o.static then o.static = o.static:gsub("/+$", "") end
    M.check_deploy(o, fname, level)
  elseif o.tls then
    M.check_client_tls(o.tls, fname, level)
  end
  return o
end

--[[ check_workers(opts, fname, level) -> workers, reload_grace
  luaws.run's worker options: workers (an integer 1-1024, or "auto": one
  per online CPU; nil: no workers) and reload_grace (seconds an old worker
  serves its connections after a SIGHUP reload; default 30). Raises (at
  level) naming fname. ]]
M.MAX_WORKERS = 1024
function M.check_workers(opts, fname, level)
  level = (level or 2) + 1
  local w, rg = opts.workers, opts.reload_grace
  if w ~= nil and w ~= "auto" and (type(w) ~= "number" or w ~= floor(w) or w < 1 or w > M.MAX_WORKERS) then
    error(("%s: option 'workers' must be an integer 1-%d or \"auto\", got %s"):format(fname, M.MAX_WORKERS,
      type(w) == "string" and ("%q"):format(w) or tostring(w)), level)
  end
  if rg ~= nil and (type(rg) ~= "number" or rg < 0 or rg ~= rg or rg == math.huge) then
    error(fname .. ": option 'reload_grace' must be a number of seconds >= 0", level)
  end
  return w, rg or 30
end

--[[ core_options(o) -> the table the C core reads (core.listen /
  core.connect): every connection option, numbers the C side wants as
  integers floored, "off" as 0. ]]
function M.core_options(o)
  return {
    keep_alive_interval = o.keep_alive_interval, keep_alive_timeout = o.keep_alive_timeout or 0,
    idle_timeout = o.idle_timeout or 0, handshake_timeout = o.timeout or o.handshake_timeout,
    close_timeout = o.close_timeout, max_message_size = floor(o.max_message_size),
    max_backpressure = floor(o.max_backpressure), receive_buffer_size = floor(o.receive_buffer_size),
    check_send_utf8 = o.check_send_utf8, compression = o.compression,
    max_connections = o.max_connections and floor(o.max_connections) or 0,
    max_topics = o.max_topics and floor(o.max_topics) or nil,
    max_topics_per_connection = o.max_topics_per_connection and floor(o.max_topics_per_connection) or nil,
    backlog = o.backlog and floor(o.backlog) or nil,
    max_body_size = o.max_body_size and floor(o.max_body_size) or nil,
  }
end

return M
