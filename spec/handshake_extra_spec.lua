-- SPDX-License-Identifier: MIT
--
-- spec/handshake_extra_spec.lua -- the handshake codec's failure paths that
-- spec/handshake_spec.lua cannot reach: OpenSSL failing inside ws_accept_key
-- and ws_client_key (csrc/handshake.c), and heads that do not parse.
--
-- OpenSSL does not fail on demand, so these specs inject the failure: a small
-- LD_PRELOAD shim (its C source is below, compiled into build/spec/) makes
-- the libcrypto calls named in LUAWS_FAIL_CRYPTO fail, in a child lua5.4
-- that loads build/luaws/core.so. The child is run once with nothing failing
-- first, so a broken shim cannot pass for an injected failure.
local core = require "luaws.core"
local helper = require "helper"   -- helper.fails: nil, a message, a token
local proc = require "support.proc"

local SHIM_C = [[
/* Fail the libcrypto calls named in LUAWS_FAIL_CRYPTO (comma-separated);
 * forward everything else to the real libcrypto. "EVP_DigestFinal_ex_short"
 * makes EVP_DigestFinal_ex succeed but report a 16-byte digest. Linked with -lcrypto
 * (--no-as-needed: nothing here calls it directly), so libcrypto follows
 * it in the global search order and RTLD_NEXT finds the real functions
 * (core.so, which needs them, comes later by dlopen). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

static int failing(const char *name)
{
    const char *s = getenv("LUAWS_FAIL_CRYPTO");
    size_t n = strlen(name);

    while (s != NULL && *s != '\0') {
        if (strncmp(s, name, n) == 0 && (s[n] == ',' || s[n] == '\0'))
            return 1;
        s = strchr(s, ',');
        if (s != NULL)
            s++;
    }
    return 0;
}

static void *real(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (f == NULL)
        abort();
    return f;
}

int EVP_DigestFinal_ex(EVP_MD_CTX *ctx, unsigned char *md, unsigned int *size)
{
    int (*f)(EVP_MD_CTX *, unsigned char *, unsigned int *);
    int ok;

    if (failing("EVP_DigestFinal_ex"))
        return 0;
    *(void **)&f = real("EVP_DigestFinal_ex");
    ok = f(ctx, md, size);
    if (failing("EVP_DigestFinal_ex_short") && size != NULL)
        *size = 16;
    return ok;
}

EVP_MD *EVP_MD_fetch(OSSL_LIB_CTX *lib, const char *name, const char *props)
{
    EVP_MD *(*f)(OSSL_LIB_CTX *, const char *, const char *);

    if (failing("EVP_MD_fetch"))
        return NULL;
    *(void **)&f = real("EVP_MD_fetch");
    return f(lib, name, props);
}

int EVP_DigestInit_ex(EVP_MD_CTX *ctx, const EVP_MD *type, ENGINE *impl)
{
    int (*f)(EVP_MD_CTX *, const EVP_MD *, ENGINE *);

    if (failing("EVP_DigestInit_ex"))
        return 0;
    *(void **)&f = real("EVP_DigestInit_ex");
    return f(ctx, type, impl);
}

int RAND_bytes(unsigned char *buf, int num)
{
    int (*f)(unsigned char *, int);

    if (failing("RAND_bytes"))
        return 0;
    *(void **)&f = real("RAND_bytes");
    return f(buf, num);
}
]]

local SHIM_DIR = "build/spec"
local SHIM_SO = SHIM_DIR .. "/failing_crypto.so"

-- Compile the shim once; error with the compiler's words if that fails.
local shim_built = false
local function build_shim()
  if shim_built then return end
  proc.check { "mkdir", "-p", SHIM_DIR }
  local src = SHIM_DIR .. "/failing_crypto.c"
  local f = assert(io.open(src, "w"))
  f:write(SHIM_C)
  f:close()
  proc.check({ "cc", "-shared", "-fPIC", "-o", SHIM_SO, src, "-Wl,--no-as-needed", "-lcrypto", "-ldl" },
    { unset = { "LD_PRELOAD" } })
  shim_built = true
end

-- Run `expr` (Lua returning values, with `core` in scope) in a child lua5.4
-- whose libcrypto calls listed in fail (a string, "" for none) fail; return
-- the values it returned (nil, strings, numbers, booleans), all of them.
local function in_child(fail, expr)
  build_shim()
  local preload = os.getenv("LD_PRELOAD")   -- keep the ASan runtime first under SANITIZE=1
  preload = (preload and preload ~= "" and preload .. " " or "") .. SHIM_SO
  local code = "package.cpath = [[build/?.so;]] .. package.cpath; "
    .. "local core = require [[luaws.core]]; "
    .. "local t = table.pack(" .. expr .. "); "
    .. "for i = 1, t.n do t[i] = string.format([[%q]], t[i]) end; "
    .. "io.write(table.concat(t, [[, ]], 1, t.n))"
  local out = proc.check({ "lua5.4", "-e", code }, { env = { LUAWS_FAIL_CRYPTO = fail, LD_PRELOAD = preload } })
  return assert(load("return " .. out, "the child's values", "t", {}), "child printed: " .. out)()
end

-- RFC 6455 §1.3; also base64(SHA-1(key .. GUID)) computed independently.
local RFC_KEY, RFC_ACCEPT = "dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
local LONG_KEY = ("k"):rep(200)   -- past KEY_STACK_MAX (128): the streamed digest

describe("luaws.core handshake codec when OpenSSL fails", function()
  it("answers as usual with the shim loaded and nothing failing", function()
    assert.are.equal(RFC_ACCEPT, in_child("", ("core.accept_key(%q)"):format(RFC_KEY)))
    assert.are.equal(core.accept_key(LONG_KEY), in_child("", ("core.accept_key(%q)"):format(LONG_KEY)))
    assert.are.equal(24, #in_child("", "core.client_key()"))
  end)

  it("accept_key returns nil, a message, \"tls\" when OpenSSL has no SHA-1 to fetch", function()
    helper.fails_with("tls", "accept_key: ", in_child("EVP_MD_fetch", ("core.accept_key(%q)"):format(RFC_KEY)))
  end)

  it("accept_key returns nil, a message, \"tls\" when the SHA-1 cannot start, for a usual and a long key", function()
    helper.fails_with("tls", "accept_key: ", in_child("EVP_DigestInit_ex", ("core.accept_key(%q)"):format(RFC_KEY)))
    helper.fails_with("tls", "accept_key: ", in_child("EVP_DigestInit_ex", ("core.accept_key(%q)"):format(LONG_KEY)))
  end)

  it("accept_key returns nil, a message, \"tls\" when the SHA-1 cannot finish", function()
    helper.fails_with("tls", "accept_key: ", in_child("EVP_DigestFinal_ex", ("core.accept_key(%q)"):format(RFC_KEY)))
  end)

  it("accept_key returns nil, a message, \"tls\" when the digest is not 20 bytes long", function()
    helper.fails_with("tls", "accept_key: ", in_child("EVP_DigestFinal_ex_short", ("core.accept_key(%q)"):format(RFC_KEY)))
  end)

  it("client_key returns nil, a message, \"tls\" when RAND_bytes fails", function()
    helper.fails_with("tls", "client_key: ", in_child("RAND_bytes", "core.client_key()"))
  end)
end)

describe("luaws.core handshake codec on heads that do not parse", function()
  local cases = {
    { "a partial head", "GET /ws HTTP/1.1\r\nHost: a\r\n", "partial" },
    { "a malformed head", "GET /ws HTTP/1.1\r\nHost : a\r\n\r\n", "bad request" },
    { "too many headers", "GET / HTTP/1.1\r\n" .. ("X: v\r\n"):rep(65) .. "\r\n", "headers too large" },
  }
  for _, c in ipairs(cases) do
    it("handshake_is_upgrade returns nil, a message, " .. c[3] .. " for " .. c[1], function()
      helper.fails_with(c[3], "handshake_is_upgrade: ", core.handshake_is_upgrade(c[2]))
    end)
  end
end)
