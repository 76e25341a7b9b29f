# BFIA interconnect gateway - one non-recursive GNU Makefile.
#
#   make            build/gateway and build/bfiactl (-Wall -Wextra clean)
#   make WERROR=1   the same with -Werror (CI)
#   make SAN=1      ASan+UBSan build under build/san/
#   make deps       install every Debian package the project needs (idempotent)
#   make test       unit + integration tests under ASan+UBSan (test/run.sh)
#   make demo       the main job: two nodes, a two-party job, outcome per party
#   make providers  build and import the provider images (demo, ecdh-psi; no registry)
#   make images     build the testbed's gateway and PostgreSQL images (no registry)
#   make testbed    a multi-party testbed in docker-compose (PARTIES=3 for three)
#                   running a job across the parties; make testbed-down removes it
#   make testbed-bench  cold and warm start-to-job-finished timings, 2 and 3 parties
#   make run/stop   embedded default: private PostgreSQL under var/ + one gateway
#   make bench      wrk benchmarks, prints figures
#   make check      test plus static checks (banned calls on the loop)
#   make fuzz       every libFuzzer harness for FUZZ_TIME seconds (default 60)

PKGS     := libevent libcurl libcjson libpq openssl yaml-0.1 libprotobuf-c
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

# Protobuf messages (routes/proto/*.proto) compiled by protoc-c at build
# time into $(OUT)/gen; the generated code goes into the library.
PROTO_SRC := $(wildcard routes/proto/*.proto)
PROTO_C   := $(PROTO_SRC:%.proto=$(OUT)/gen/%.pb-c.c)
PROTO_H   := $(PROTO_C:.c=.h)
LIB_OBJ   += $(PROTO_C:$(OUT)/gen/%.c=$(OUT)/obj/gen/%.o)
CPPFLAGS  += -I$(OUT)/gen

UNIT_SRC := $(wildcard test/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:test/unit/%.c=$(OUT)/test/%)

FUZZ_SRC := $(wildcard test/fuzz/fuzz_*.c)
FUZZ_REPLAY := $(FUZZ_SRC:test/fuzz/%.c=$(OUT)/test/replay_%)

FUZZ_BIN := $(FUZZ_SRC:test/fuzz/%.c=build/fuzz/%)
FUZZ_TIME ?= 60

TOOL_SRC := $(wildcard test/support/*.c)
TOOL_BIN := $(TOOL_SRC:test/support/%.c=$(OUT)/tools/%)

# The ECDH-PSI provider (deploy/providers/psi): a program of its own that
# links only libcrypto and protobuf-c, never the gateway library.  Its
# message code is generated from the .proto files by protoc-c.
PSI_DIR     := deploy/providers/psi
PSI_GEN     := build/gen/psi
PSI_PB_C    := $(patsubst $(PSI_DIR)/proto/%.proto,$(PSI_GEN)/%.pb-c.c,$(wildcard $(PSI_DIR)/proto/*.proto))
PSI_PB_H    := $(PSI_PB_C:.c=.h)
PSI_LIB_SRC := $(filter-out $(PSI_DIR)/psi_main.c $(PSI_DIR)/psi_transport_mem.c,$(wildcard $(PSI_DIR)/*.c))
PSI_OBJ     := $(PSI_LIB_SRC:%.c=$(OUT)/obj/%.o) $(PSI_PB_C:$(PSI_GEN)/%.c=$(OUT)/obj/psi-gen/%.o)
PSI_MEM_OBJ := $(OUT)/obj/$(PSI_DIR)/psi_transport_mem.o
PSI_LDLIBS  := -lcrypto -lprotobuf-c -lpthread
PSI_INC     := -I$(PSI_DIR) -I$(PSI_GEN)
PSI_BENCH   := $(OUT)/tools/psi_bench

.PHONY: all build deps test check bench run stop demo clean fuzz fuzz-bins unit providers images \
        testbed \
        testbed-down testbed-bench
.DEFAULT_GOAL := all

all build: $(OUT)/gateway $(OUT)/bfiactl $(OUT)/ecdh-psi

$(OUT)/obj/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(OUT)/gen/%.pb-c.c $(OUT)/gen/%.pb-c.h: %.proto
	@mkdir -p $(OUT)/gen
	protoc-c --c_out=$(OUT)/gen -I. $<

# generated code: not ours to keep warning-free
$(OUT)/obj/gen/%.o: $(OUT)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -w -c $< -o $@

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

$(PSI_GEN)/%.pb-c.c $(PSI_GEN)/%.pb-c.h: $(PSI_DIR)/proto/%.proto
	@mkdir -p $(PSI_GEN)
	protoc-c --proto_path=$(PSI_DIR)/proto --c_out=$(PSI_GEN) $<

$(OUT)/obj/psi-gen/%.o: $(PSI_GEN)/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(PSI_INC) $(CFLAGS) -c $< -o $@

$(OUT)/obj/$(PSI_DIR)/%.o $(OUT)/obj/test/unit/test_psi%.o $(OUT)/obj/test/bench/psi_%.o: CPPFLAGS += $(PSI_INC)
$(PSI_OBJ) $(PSI_MEM_OBJ) $(OUT)/obj/$(PSI_DIR)/psi_main.o $(OUT)/obj/test/bench/psi_bench.o \
    $(patsubst %,$(OUT)/obj/%.o,$(basename $(wildcard test/unit/test_psi*.c))): | $(PSI_PB_H)

$(OUT)/ecdh-psi: $(OUT)/obj/$(PSI_DIR)/psi_main.o $(PSI_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(PSI_LDLIBS)

# The unit tests of the component link its objects, not the gateway library.
$(OUT)/test/test_psi%: $(OUT)/obj/test/unit/test_psi%.o $(PSI_OBJ) $(PSI_MEM_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PSI_LDLIBS) -lcmocka

$(PSI_BENCH): $(OUT)/obj/test/bench/psi_bench.o $(PSI_OBJ) $(PSI_MEM_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PSI_LDLIBS)

# The static binary of the provider image (no sanitizers, nothing else in
# the image).  libcrypto's DSO and BIO code makes ld warn about dlopen and
# getaddrinfo in a static binary; the component calls neither.
build/providers/ecdh-psi: $(PSI_LIB_SRC) $(PSI_DIR)/psi_main.c $(PSI_PB_C) $(PSI_PB_H) $(wildcard $(PSI_DIR)/*.h)
	@mkdir -p $(dir $@)
	$(CC) -static -std=c11 -O2 -D_GNU_SOURCE $(PSI_INC) -DPSI_VERSION='"1.0.0"' -o $@ \
	    $(filter %.c,$^) -s -Wl,--no-warnings $(PSI_LDLIBS)

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
	$(MAKE) all $(TOOL_BIN) $(PSI_BENCH)
	sh test/bench/run.sh

run: deps all
	sh deploy/run.sh start

# The main job: two gateway nodes, a real two-party job (deploy/demo.sh).
demo: deps all
	sh deploy/demo.sh

# The provider images (demo, ecdh-psi), built offline and imported into the engine.
providers: deps
	$(MAKE) build/providers/ecdh-psi
	DK="$$(sh test/support/dockerd.sh ensure var/demo/docker)" && \
	    sh deploy/providers/build.sh "$$DK" && sh deploy/providers/psi/build.sh "$$DK"

# The testbed: one compose project per party (deploy/compose/), images
# built from this machine's Debian packages with no registry.
TESTBED_ENGINE = $$(sh test/support/dockerd.sh ensure $${TESTBED_DOCKER_STATE:-var/demo/docker})

images: deps all
	sh deploy/compose/images.sh "$(TESTBED_ENGINE)"

testbed: deps all
	sh deploy/compose/testbed.sh up

testbed-down:
	sh deploy/compose/testbed.sh down

testbed-bench: deps all
	sh test/bench/testbed.sh

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
