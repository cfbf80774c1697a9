-- SPDX-License-Identifier: MIT
-- The npm `ws` client (node, spec/peers/node_modules, perMessageDeflate off)
-- talks to the server under test: echoes, fragmentation, ordering, ping and
-- close codes. Pending when node or node_modules/ws is missing
-- (scripts/deps.sh installs both).

local proc = require("support.proc")
local peer = require("support.peer")

peer.describe(_ENV, {
  title = "node ws client",
  available = proc.have_node_ws,
  command = function(url)
    return { "node", "spec/peers/node_client.js", url }
  end,
  checks = peer.CHECKS,
})
