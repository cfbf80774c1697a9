-- SPDX-License-Identifier: MIT
-- The python3-websockets asyncio client (proc.PYTHON: Debian's python3) talks to
-- the server under test: echoes, fragmentation, ordering, ping and close codes.
-- Pending when that python3 (LUAWS_PYTHON) cannot import websockets.

local proc = require("support.proc")
local peer = require("support.peer")

peer.describe(_ENV, {
  title = "python3-websockets client",
  available = function()
    local ok, why = proc.have_python("websockets")
    if ok then return true end
    return false, why .. " (apt-get install python3-websockets)"
  end,
  command = function(url)
    return { proc.PYTHON, "spec/peers/python_client.py", url }
  end,
  checks = peer.CHECKS,
})
