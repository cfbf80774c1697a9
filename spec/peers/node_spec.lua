-- SPDX-License-Identifier: MIT
-- The npm `ws` client (node, spec/peers/node_modules, perMessageDeflate off)
-- talks to the server under test: echoes, fragmentation, ordering, ping and
-- close codes. Pending when node or node_modules/ws is missing
-- (scripts/deps.sh installs both).

local proc = require("support.proc")
local sut = require("support.sut")
local peer = require("support.peer")

peer.describe(_ENV, {
  title = "node ws client",
  available = function()
    local _, code = proc.run({ "node", "--version" }, { timeout = 20 })
    if code ~= 0 then return false, "no node on PATH" end
    local f = io.open(sut.root() .. "/spec/peers/node_modules/ws/package.json", "r")
    if not f then return false, "spec/peers/node_modules/ws is missing (run scripts/deps.sh)" end
    f:close()
    return true
  end,
  command = function(url)
    return { "node", "spec/peers/node_client.js", url }
  end,
  checks = peer.CHECKS,
})
