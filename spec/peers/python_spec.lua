-- SPDX-License-Identifier: MIT
-- The python3-websockets asyncio client (Debian's /usr/bin/python3) talks to
-- the server under test: echoes, fragmentation, ordering, ping and close codes.
-- Pending when /usr/bin/python3 cannot import websockets.

local sut = require("support.sut")
local peer = require("support.peer")

peer.describe(_ENV, {
  title = "python3-websockets client",
  available = function()
    if sut.has_python_websockets() then return true end
    return false, sut.PYTHON .. " cannot import websockets (apt-get install python3-websockets)"
  end,
  command = function(url)
    return sut.PYTHON .. " spec/peers/python_client.py " .. url
  end,
  checks = peer.CHECKS,
})
