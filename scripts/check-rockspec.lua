-- Usage: lua5.4 scripts/check-rockspec.lua ROCKSPEC csrc/a.c csrc/b.c ...
-- Fails when the rockspec's luaws.core sources differ from the C files given
-- (the Makefile passes csrc/*/*.c), or a lua/ module is missing from it.
local path = assert(arg[1], "usage: check-rockspec.lua ROCKSPEC FILES...")
local env = {}
assert(loadfile(path, "t", env))()
local listed = {}
for _, f in ipairs(env.build.modules["luaws.core"].sources) do listed[f] = true end
local bad = 0
for i = 2, #arg do
  if not listed[arg[i]] then print("missing from the rockspec: " .. arg[i]); bad = bad + 1 end
  listed[arg[i]] = nil
end
for f in pairs(listed) do print("in the rockspec but not in csrc/*/: " .. f); bad = bad + 1 end
local p = io.popen("ls lua/luaws/*.lua lua/*.lua")
for f in p:lines() do
  local found = false
  for _, v in pairs(env.build.modules) do if v == f then found = true end end
  if not found then print("lua module missing from the rockspec: " .. f); bad = bad + 1 end
end
p:close()
if bad > 0 then os.exit(1) end
print("rockspec sources match csrc/ and lua/")
