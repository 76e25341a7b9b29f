# BFIA interconnect gateway - one non-recursive GNU Makefile.
#
#   make            build/gateway and build/bfiactl (-Wall -Wextra clean)
#   make WERROR=1   the same with -Werror (CI)
#   make SAN=1      ASan+UBSan build under build/san/
#   make deps       install every Debian package the project needs (idempotent)
#   make test       unit + integration tests under ASan+UBSan (test/run.sh)
#   make demo       the main job: two nodes, a two-party job, outcome per party
#   make providers  build and import the demo provider image (no registry)
#   make run/stop   embedded default: private PostgreSQL under var/ + one gateway
#   make bench      wrk benchmarks, prints figures
#   make check      test plus static checks (banned calls on the loop)
#   make fuzz       every libFuzzer harness for FUZZ_TIME seconds (default 60)

PKGS     := libevent libcurl libcjson libpq openssl yaml-0.1
CC       ?= cc
VERSION  := 0.1.0
GIT_REV  := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

ifeq ($(FUZZ),1)
  # libFuzzer build (clang): the library is instrumented for coverage, the
  # harnesses link libFuzzer's main (test/fuzz/README).
  CC       := clang
  OUT      := build/fuzz
  SANFLAGS := -fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=all \
              -fno-omit-frame-pointer
  OPT      := -O1 -g
else ifeq ($(SAN),1)
  OUT      := build/san
  SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
  OPT      := -O1 -g
else
  OUT      := build
  SANFLAGS :=
  OPT      ?= -O2 -g
endif

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla \
        -fno-common -Wno-format-nonliteral
ifeq ($(WERROR),1)
  WARN += -Werror
endif

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -levent_openssl

CPPFLAGS += -D_GNU_SOURCE -I. -DGW_VERSION='"$(VERSION)"' -DGW_GIT_REV='"$(GIT_REV)"'
CFLAGS   += -std=c11 $(OPT) $(WARN) $(SANFLAGS) -pthread -MMD -MP $(PKG_CFLAGS)
LDFLAGS  += $(SANFLAGS) -pthread
LDLIBS   += $(PKG_LIBS) -lm

# Everything except the two mains goes into one static library that the
# binaries and the unit tests link.
LIB_SRC := $(filter-out gateway/main.c gateway/ctl.c, \
             $(wildcard gateway/*.c routes/*.c scheduler/*.c container/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(OUT)/obj/%.o)
LIB     := $(OUT)/libgw.a

UNIT_SRC := $(wildcard test/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:test/unit/%.c=$(OUT)/test/%)

FUZZ_SRC := $(wildcard test/fuzz/fuzz_*.c)
FUZZ_REPLAY := $(FUZZ_SRC:test/fuzz/%.c=$(OUT)/test/replay_%)

FUZZ_BIN := $(FUZZ_SRC:test/fuzz/%.c=build/fuzz/%)
FUZZ_TIME ?= 60

TOOL_SRC := $(wildcard test/support/*.c)
TOOL_BIN := $(TOOL_SRC:test/support/%.c=$(OUT)/tools/%)

.PHONY: all build deps test check bench run stop demo clean fuzz fuzz-bins unit providers
.DEFAULT_GOAL := all

all build: $(OUT)/gateway $(OUT)/bfiactl

$(OUT)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(OUT)/gateway: $(OUT)/obj/gateway/main.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(OUT)/bfiactl: $(OUT)/obj/gateway/ctl.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(OUT)/test/test_%: $(OUT)/obj/test/unit/test_%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

# A fuzz target built with the standalone replay main (gcc + ASan), so every
# committed corpus is a regression test in `make test`.
$(OUT)/test/replay_%: $(OUT)/obj/test/fuzz/%.o $(OUT)/obj/test/fuzz/replay_main.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# A libFuzzer binary per harness (make FUZZ=1 fuzz-bins).
build/fuzz/fuzz_%: build/fuzz/obj/test/fuzz/fuzz_%.o build/fuzz/libgw.a
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

fuzz-bins: $(FUZZ_BIN)

$(OUT)/tools/%: $(OUT)/obj/test/support/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

unit: $(UNIT_BIN) $(FUZZ_REPLAY) $(TOOL_BIN)

# Installation of Debian packages; does nothing when all are present.
deps:
	@sh deploy/deps.sh

test: deps
	$(MAKE) SAN=1 all unit
	$(MAKE) all
	$(MAKE) FUZZ=1 fuzz-bins
	sh test/run.sh

check: test
	sh test/support/banned.sh

bench: deps
	$(MAKE) all $(TOOL_BIN)
	sh test/bench/run.sh

run: deps all
	sh deploy/run.sh start

# The main job: two gateway nodes, a real two-party job (deploy/demo.sh).
demo: deps all
	sh deploy/demo.sh

# The demo provider image, built offline and imported into the engine.
providers: deps
	sh deploy/providers/build.sh "$$(sh test/support/dockerd.sh ensure var/demo/docker)"

stop:
	sh deploy/run.sh stop

# Every harness for FUZZ_TIME seconds (one after the other), each on a
# scratch copy of its committed corpus; findings land in build/fuzz/findings.
fuzz: deps
	$(MAKE) FUZZ=1 fuzz-bins
	sh test/fuzz/run.sh $(FUZZ_TIME)

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
