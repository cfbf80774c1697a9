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

local SHIM_C = [[
/* Fail the libcrypto calls named in LUAWS_FAIL_CRYPTO (comma-separated);
 * forward everything else to the real libcrypto. "EVP_Digest_short" makes
 * EVP_Digest succeed but report a 16-byte digest. Linked with -lcrypto
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

int EVP_Digest(const void *data, size_t count, unsigned char *md, unsigned int *size,
               const EVP_MD *type, ENGINE *impl)
{
    int (*f)(const void *, size_t, unsigned char *, unsigned int *, const EVP_MD *, ENGINE *);
    int ok;

    if (failing("EVP_Digest"))
        return 0;
    *(void **)&f = real("EVP_Digest");
    ok = f(data, count, md, size, type, impl);
    if (failing("EVP_Digest_short") && size != NULL)
        *size = 16;
    return ok;
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
  assert(os.execute("mkdir -p " .. SHIM_DIR))
  local src = SHIM_DIR .. "/failing_crypto.c"
  local f = assert(io.open(src, "w"))
  f:write(SHIM_C)
  f:close()
  local cc = io.popen("cc -shared -fPIC -o " .. SHIM_SO .. " " .. src
    .. " -Wl,--no-as-needed -lcrypto -ldl 2>&1")
  local out = cc:read("a")
  local ok = cc:close()
  assert(ok, "cannot build the failing-crypto shim: " .. out)
  shim_built = true
end

-- Run `expr` (Lua returning values, with `core` in scope) in a child lua5.4
-- whose libcrypto calls listed in fail (a string, "" for none) fail; return
-- what it printed: the results joined with "|".
local function in_child(fail, expr)
  build_shim()
  local preload = os.getenv("LD_PRELOAD")   -- keep the ASan runtime first under SANITIZE=1
  preload = (preload and preload ~= "" and preload .. " " or "") .. SHIM_SO
  local code = "package.cpath = [[build/?.so;]] .. package.cpath; "
    .. "local core = require [[luaws.core]]; "
    .. "local t = table.pack(" .. expr .. "); "
    .. "for i = 1, t.n do t[i] = tostring(t[i]) end; "
    .. "io.write(table.concat(t, [[|]], 1, t.n))"
  local cmd = ("LUAWS_FAIL_CRYPTO='%s' LD_PRELOAD='%s' lua5.4 -e '%s' 2>&1"):format(fail, preload, code)
  local p = io.popen(cmd)
  local out = p:read("a")
  local ok = p:close()
  assert(ok, "child failed: " .. out)
  return out
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

  it("accept_key returns nil, \"tls\" when the one-call SHA-1 fails", function()
    assert.are.equal("nil|tls", in_child("EVP_Digest", ("core.accept_key(%q)"):format(RFC_KEY)))
  end)

  it("accept_key returns nil, \"tls\" when the streamed SHA-1 of a long key fails", function()
    -- (libcrypto's own EVP_Digest calls EVP_DigestInit_ex too, so a short key
    -- fails the same way here; it is the long key that takes the other path.)
    assert.are.equal("nil|tls", in_child("EVP_DigestInit_ex", ("core.accept_key(%q)"):format(LONG_KEY)))
  end)

  it("accept_key returns nil, \"tls\" when the digest is not 20 bytes long", function()
    assert.are.equal("nil|tls", in_child("EVP_Digest_short", ("core.accept_key(%q)"):format(RFC_KEY)))
  end)

  it("client_key returns nil, \"tls\" when RAND_bytes fails", function()
    assert.are.equal("nil|tls", in_child("RAND_bytes", "core.client_key()"))
  end)
end)

describe("luaws.core handshake codec on heads that do not parse", function()
  local cases = {
    { "a partial head", "GET /ws HTTP/1.1\r\nHost: a\r\n", "partial" },
    { "a malformed head", "GET /ws HTTP/1.1\r\nHost : a\r\n\r\n", "bad request" },
    { "too many headers", "GET / HTTP/1.1\r\n" .. ("X: v\r\n"):rep(65) .. "\r\n", "headers too large" },
  }
  for _, c in ipairs(cases) do
    it("handshake_is_upgrade returns nil, " .. c[3] .. " for " .. c[1], function()
      local ok, err = core.handshake_is_upgrade(c[2])
      assert.is_nil(ok)
      assert.are.equal(c[3], err)
    end)
  end
end)
