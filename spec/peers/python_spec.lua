-- SPDX-License-Identifier: MIT
-- The python3-websockets asyncio client (Debian's /usr/bin/python3) talks to
-- the server under test: echoes, fragmentation, ordering, ping and close codes.
-- Pending when /usr/bin/python3 cannot import websockets.

local sut = require("support.sut")

require("support.peer").describe(_ENV, {
  title = "python3-websockets client",
  available = function()
    if sut.has_python_websockets() then return true end
    return false, sut.PYTHON .. " cannot import websockets (apt-get install python3-websockets)"
  end,
  command = function(url)
    return sut.PYTHON .. " spec/peers/python_client.py " .. url
  end,
  checks = {
    "text echo",
    "binary echo",
    "empty text echo",
    "empty binary echo",
    "1 MiB binary echo",
    "fragmented text message echoed whole",
    "100 messages echoed in order",
    "ping answered by a pong",
    "close 1000 with a reason: the server closes with 1000",
    "close 4001: the server echoes 4001",
  },
})
