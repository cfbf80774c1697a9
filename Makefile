# luaws -- build, test, run. `make test` and `make run` install what is missing
# (scripts/deps.sh says what it installs) before they build.

LUA        ?= lua5.4
LUA_INCDIR ?= /usr/include/lua5.4
BUSTED     ?= busted --lua=$(LUA)
SANITIZE   ?= 0
TLS        ?= 0
ifeq ($(TLS),1)
PORT       ?= 5443
endif
PORT       ?= 5000
SPECS      ?= spec

SRCS := $(wildcard csrc/proto/*.c csrc/io/*.c csrc/lua/*.c)
OBJDIR := build/obj$(if $(filter 1,$(SANITIZE)),-san)
OBJS := $(SRCS:csrc/%.c=$(OBJDIR)/%.o)
CORE := build/luaws/core.so

CFLAGS ?= -O2 -g
override CFLAGS += -std=c11 -D_GNU_SOURCE -fPIC -fvisibility=hidden \
	-Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-DOPENSSL_API_COMPAT=30000 -I$(LUA_INCDIR) -Icsrc
LDLIBS := -lev -lhiredis -lssl -lcrypto -lz
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
	@$(MAKE) --no-print-directory all $(CTEST) $(CTEST)_noavx2
	@scripts/check-layers
	@mkdir -p build
	@$(RUNENV) $(BUSTED) -o TAP $(SPECS) 2>&1 | tee build/test-$(SANITIZE).tap; \
	  scripts/tap-summary build/test-$(SANITIZE).tap

# The C unit harness of the pure codecs (ctest/codec_test.c: the buffer
# contract, reads past the end against a guard page), with ASan+UBSan; no
# Lua, no libev. spec/codec_c_spec.lua runs it inside `make test`.
CTEST      := build/ctest/codec_test
CTEST_SRCS := ctest/codec_test.c $(wildcard csrc/proto/*.c)
$(CTEST) $(CTEST)_noavx2: $(CTEST_SRCS) $(wildcard csrc/proto/*.h) csrc/luaws.h
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_DEFAULT_SOURCE -Wall -Wextra -Werror -Wshadow -g -O1 -fno-omit-frame-pointer \
	  $(if $(filter %_noavx2,$@),-DLUAWS_NO_AVX2) \
	  -fsanitize=address,undefined -fno-sanitize-recover=all -Icsrc -o $@ $(CTEST_SRCS) -lcrypto -lz

test-c: $(CTEST) $(CTEST)_noavx2
	$(CTEST)
	$(CTEST)_noavx2

# The example pages in headless Debian chromium (spec/browser/run.sh installs
# chromium and playwright-core when missing); ends with "N passed, N failed".
.PHONY: test-browser
test-browser: deps
	@$(MAKE) --no-print-directory all
	@spec/browser/run.sh

# The server replaces the recipe's shell (exec), so it is make's own child and
# signals sent to the job reach it: Ctrl-C in the foreground, `kill %1` or
# `kill -TERM PID` (the PID it prints) in the background; make passes a
# SIGTERM sent to make itself on to it.
#
# TLS=1: https://localhost:5443/ (and wss://) with a self-signed certificate
# for localhost, made once with the openssl command into build/tls/.
TLS_CERT := build/tls/localhost.pem
TLS_KEY  := build/tls/localhost-key.pem
run: deps
	@$(MAKE) --no-print-directory all $(if $(filter 1,$(TLS)),$(TLS_CERT))
	@exec $(LUA) examples/echo.lua --port $(PORT) $(if $(filter 1,$(COROUTINE)),--coroutine) \
	  $(if $(filter 1,$(COMPRESSION)),--compression) \
	  $(if $(filter 1,$(TLS)),--tls-cert $(TLS_CERT) --tls-key $(TLS_KEY))

$(TLS_CERT):
	@mkdir -p $(@D)
	@echo "make run TLS=1: a self-signed certificate for localhost in $(@D)/ (openssl req)"
	@openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj /CN=localhost \
	  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
	  -keyout $(TLS_KEY) -out $@ 2>/dev/null

rock: deps
	luarocks --lua-version=5.4 make --local rockspec/luaws-scm-1.rockspec

# The rockspec's source list must match csrc/*/*.c.
check-rockspec:
	@$(LUA) scripts/check-rockspec.lua rockspec/luaws-scm-1.rockspec $(SRCS)

valgrind: deps
	@$(MAKE) --no-print-directory all SANITIZE=0
	scripts/valgrind-echo.sh

clean:
	rm -rf build luaws

-include $(OBJS:.o=.d)

# ---- fuzzing: libFuzzer targets in fuzz/ (fuzz/README.md) -------------------
# `make fuzz` builds them with clang and runs each for FUZZ_SECONDS on a copy
# of its seed corpus (fuzz/corpus/<target>/ -> build/fuzz/corpus/<target>/);
# a crash fails the run and leaves the input in build/fuzz/artifacts/.
# Only the codec objects are instrumented for coverage feedback; the
# harnesses are built with the sanitizers alone, so libFuzzer's "cov" counts
# edges of csrc/ and the harnesses' own loops do not slow every input.
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_TARGETS ?= frame http utf8 chunked pmd proxy forwarded
FUZZ_DIR     := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS  := -std=c11 -D_DEFAULT_SOURCE -g -O1 -fno-omit-frame-pointer \
	-Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Icsrc -Ifuzz
# The pure codec files each target links: no Lua, no libev.
FUZZ_SRCS_frame := proto/frame proto/utf8
FUZZ_SRCS_http  := proto/http proto/handshake
FUZZ_SRCS_utf8  := proto/utf8
FUZZ_SRCS_chunked := proto/http
FUZZ_SRCS_pmd   := proto/pmd proto/deflate proto/buffer
FUZZ_SRCS_proxy := proto/proxy proto/addr
FUZZ_SRCS_forwarded := proto/forwarded proto/addr proto/http
FUZZ_LIBS_http  := -lcrypto
FUZZ_LIBS_pmd   := -lz
FUZZ_PKGS := clang libclang-rt-14-dev
FUZZ_BINS := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/%_fuzz)
FUZZ_OBJS := $(sort $(foreach t,$(FUZZ_TARGETS),$(FUZZ_SRCS_$(t):%=$(FUZZ_DIR)/obj/%.o) $(FUZZ_DIR)/harness/$(t)_fuzz.o))

.PHONY: fuzz fuzz-build coverage
fuzz-build: $(FUZZ_BINS)

fuzz:
	@scripts/tool-deps.sh $(FUZZ_PKGS)
	@$(MAKE) --no-print-directory fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh $(FUZZ_TARGETS)

$(FUZZ_DIR)/obj/%.o: csrc/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(FUZZ_DIR)/harness/%.o: fuzz/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -MMD -MP -c -o $@ $<

define FUZZ_LINK
$(FUZZ_DIR)/$(1)_fuzz: $(FUZZ_DIR)/harness/$(1)_fuzz.o $(FUZZ_SRCS_$(1):%=$(FUZZ_DIR)/obj/%.o)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $$@ $$^ $(FUZZ_LIBS_$(1))
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call FUZZ_LINK,$(t))))

-include $(FUZZ_OBJS:.o=.d)

# ---- coverage: csrc/ line and branch coverage by the specs (gcov + lcov) ---
# `make coverage` builds core.so with --coverage into build/obj-cov (beside
# build/obj and build/obj-san), puts it at build/luaws/core.so for the run
# (subprocess specs load it from there; the kind marker makes the next
# `make` relink the plain one, and the script relinks it at the end), runs
# $(BUSTED) on COV_SPECS, and writes build/coverage/ (lcov .info, HTML, and
# summary.txt: per file lines/branches and the lines no spec reaches). It
# fails when a codec (COV_CODECS) is below COV_MIN_CODEC % of lines or the
# total below COV_MIN_TOTAL %.
COV_DIR       := build/obj-cov
COV_OBJS      := $(SRCS:csrc/%.c=$(COV_DIR)/%.o)
COV_CORE      := $(COV_DIR)/luaws/core.so
COV_SPECS     ?= spec
COV_CODECS    ?= proto/frame.c proto/utf8.c proto/http.c proto/handshake.c
COV_MIN_CODEC ?= 95
COV_MIN_TOTAL ?= 85
COV_PKGS      := lcov

coverage: deps
	@scripts/tool-deps.sh $(COV_PKGS)
	@$(MAKE) --no-print-directory $(COV_CORE)
	@BUSTED="$(BUSTED)" COV_SPECS="$(COV_SPECS)" COV_CODECS="$(COV_CODECS)" \
	  COV_MIN_CODEC=$(COV_MIN_CODEC) COV_MIN_TOTAL=$(COV_MIN_TOTAL) \
	  scripts/coverage.sh $(COV_CORE) $(COV_DIR)

$(COV_CORE): $(COV_OBJS)
	@mkdir -p $(@D)
	$(CC) -shared --coverage $(LDFLAGS) -o $@ $(COV_OBJS) $(LDLIBS)

$(COV_DIR)/%.o: csrc/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -O0 --coverage -MMD -MP -c -o $@ $<

-include $(COV_OBJS:.o=.d)

# ---- soak: a long run of mixed echo traffic (scripts/soak.lua) -------------
# SOAK_CLIENTS clients (half luaws coroutines, half python3-websockets in a
# subprocess) for SOAK_SECONDS against an echo server subprocess, with random
# sizes and random disconnects; ends with "soak: N passed, N failed" over its
# checks (nothing lost, RSS growth under 10%, fds back at the baseline).
# Not part of `make test`. SOAK_SEED repeats a run's random choices.
SOAK_SECONDS ?= 60
SOAK_CLIENTS ?= 500

.PHONY: soak
soak: deps
	@$(MAKE) --no-print-directory all
	@SOAK_SECONDS=$(SOAK_SECONDS) SOAK_CLIENTS=$(SOAK_CLIENTS) $(RUNENV) $(LUA) scripts/soak.lua

# ---- hardening controls: each limit spec fails without its limit -----------
# Runs the specs of spec/hardening/ that attack a limit against a server with
# that limit lifted (or a core built with the head limits raised) and expects
# them to fail; ends with "controls: N passed, N failed".
.PHONY: hardening-controls
hardening-controls: deps
	@$(MAKE) --no-print-directory all
	@BUSTED="$(BUSTED)" scripts/hardening-controls.sh

include bench/Makefile.inc
