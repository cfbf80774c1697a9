# luaws -- build, test, run. `make test` and `make run` install what is missing
# (scripts/deps.sh says what it installs) before they build.

LUA        ?= lua5.4
LUA_INCDIR ?= /usr/include/lua5.4
BUSTED     ?= busted --lua=$(LUA)
SANITIZE   ?= 0
PORT       ?= 5000
SPECS      ?= spec

SRCS := $(wildcard csrc/*.c)
OBJDIR := build/obj$(if $(filter 1,$(SANITIZE)),-san)
OBJS := $(SRCS:csrc/%.c=$(OBJDIR)/%.o)
CORE := build/luaws/core.so

CFLAGS ?= -O2 -g
override CFLAGS += -std=c11 -D_GNU_SOURCE -fPIC -fvisibility=hidden \
	-Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-DOPENSSL_API_COMPAT=30000 -I$(LUA_INCDIR) -Icsrc
LDLIBS := -lev -lssl -lcrypto
RUNENV :=
ifeq ($(SANITIZE),1)
override CFLAGS += -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
# lua5.4 itself is not instrumented: the ASan runtime must be loaded first.
RUNENV := LD_PRELOAD=$(shell $(CC) -print-file-name=libasan.so) \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
endif
export LUAWS_TEST_RUNENV := $(RUNENV)

.PHONY: all deps test test-c run rock check-rockspec clean valgrind
all: $(CORE)

# A sanitized build and a plain one live side by side (build/obj vs
# build/obj-san); the shared object is relinked when the kind changes.
$(CORE): $(OBJS) build/.kind-$(SANITIZE)
	@mkdir -p $(@D)
	$(CC) -shared $(LDFLAGS) -o $@ $(OBJS) $(LDLIBS)

build/.kind-$(SANITIZE):
	@mkdir -p build && rm -f build/.kind-* && touch $@

$(OBJDIR)/%.o: csrc/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

deps:
	@scripts/deps.sh

test: deps
	@$(MAKE) --no-print-directory all
	@mkdir -p build
	@$(RUNENV) $(BUSTED) -o TAP $(SPECS) 2>&1 | tee build/test-$(SANITIZE).tap; \
	  scripts/tap-summary build/test-$(SANITIZE).tap

# The example pages in headless Debian chromium (spec/browser/run.sh installs
# chromium and playwright-core when missing); ends with "N passed, N failed".
.PHONY: test-browser
test-browser: deps
	@$(MAKE) --no-print-directory all
	@spec/browser/run.sh

run: deps
	@$(MAKE) --no-print-directory all
	$(LUA) examples/echo.lua --port $(PORT)

rock: deps
	luarocks --lua-version=5.4 make --local rockspec/luaws-scm-1.rockspec

# The rockspec's source list must match csrc/*.c.
check-rockspec:
	@$(LUA) scripts/check-rockspec.lua rockspec/luaws-scm-1.rockspec $(SRCS)

valgrind: deps
	@$(MAKE) --no-print-directory all SANITIZE=0
	scripts/valgrind-echo.sh

clean:
	rm -rf build luaws

-include $(OBJS:.o=.d)
