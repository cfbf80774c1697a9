rockspec_format = "3.0"
package = "luaws"
version = "scm-1"
source = { url = "git+https://example.invalid/luaws.git" }   -- unused by `luarocks make`, but required
description = {
  summary = "WebSocket server (and client) for Lua 5.4 with a C core on libev and OpenSSL",
  detailed = [[
luaws does the RFC 6455 work in C (handshake, frame codec, UTF-8 checks,
close handshake, keep-alive and timeouts, backpressure) and gives Lua a small
callback or coroutine API: luaws.listen{...}, server:route("/ws", ...).
]],
  license = "MIT",
}
dependencies = { "lua >= 5.4, < 5.5" }
external_dependencies = {
  LIBEV = { header = "ev.h", library = "ev" },
  OPENSSL = { header = "openssl/ssl.h", library = "ssl" },
  HIREDIS = { header = "hiredis/hiredis.h", library = "hiredis" },
  ZLIB = { header = "zlib.h", library = "z" },
}
build = {
  type = "builtin",
  modules = {
    -- keep in step with csrc/*/*.c: `make check-rockspec` compares them
    ["luaws.core"] = {
      sources = {
        "csrc/proto/addr.c", "csrc/proto/buffer.c", "csrc/proto/deflate.c", "csrc/proto/errors.c", "csrc/proto/frame.c",
        "csrc/proto/handshake.c", "csrc/proto/forwarded.c", "csrc/proto/http.c", "csrc/proto/pmd.c", "csrc/proto/proxy.c",
        "csrc/proto/utf8.c", "csrc/io/backplane.c", "csrc/io/client.c",
        "csrc/io/conn.c", "csrc/io/conn_http.c", "csrc/io/loop.c", "csrc/io/metrics.c", "csrc/io/pubsub.c", "csrc/io/server.c",
        "csrc/io/tls.c", "csrc/io/transport.c", "csrc/io/workers.c", "csrc/lua/client.c", "csrc/lua/codec.c",
        "csrc/lua/conn.c", "csrc/lua/core.c", "csrc/lua/loop.c", "csrc/lua/server.c",
        "csrc/lua/timer.c", "csrc/lua/util.c", "csrc/lua/workers.c",
      },
      defines = { "OPENSSL_API_COMPAT=30000", "_GNU_SOURCE" },
      incdirs = { "csrc", "$(LIBEV_INCDIR)", "$(OPENSSL_INCDIR)", "$(HIREDIS_INCDIR)", "$(ZLIB_INCDIR)" },
      libdirs = { "$(LIBEV_LIBDIR)", "$(OPENSSL_LIBDIR)", "$(HIREDIS_LIBDIR)", "$(ZLIB_LIBDIR)" },
      libraries = { "ev", "hiredis", "ssl", "crypto", "z" },
    },
    ["luaws"] = "lua/luaws.lua",
    ["luaws.server"] = "lua/luaws/server.lua",
    ["luaws.conn"] = "lua/luaws/conn.lua",
    ["luaws.client"] = "lua/luaws/client.lua",
    ["luaws.util"] = "lua/luaws/util.lua",
    ["luaws.options"] = "lua/luaws/options.lua",
    ["luaws.routes"] = "lua/luaws/routes.lua",
    ["luaws.metrics"] = "lua/luaws/metrics.lua",
  },
  copy_directories = { "examples" },
}
test = { type = "command", command = "make test" }
