# xmesh: kernel-accelerated service-mesh node agent.
# Targets: all (build/xmesh), test, demo, bench, vmtest, image, format, lint, clean.

BUILD     ?= build
CC        ?= gcc
CLANG     ?= clang
BPFTOOL   ?= $(or $(shell command -v bpftool 2>/dev/null),/usr/sbin/bpftool)
ARCH      := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')
VERSION   := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
# `make image`'s name:tag; deploy/daemonset.yaml runs this one (tests/e2e/test_image.sh checks).
IMAGE     ?= xmesh:latest

DEPS_STAMP := $(BUILD)/.deps-ok

CFLAGS    ?= -O2 -g
SAN_CFLAGS ?=
CFLAGS    += $(SAN_CFLAGS) -Wall -Wextra -Werror -std=gnu11 -D_GNU_SOURCE -Iinclude -Iagent -I$(BUILD) \
             -DXMESH_VERSION='"$(VERSION)"' -fno-strict-aliasing -MMD -MP \
             -I/usr/include/libnl3
LDLIBS    := -lbpf -lelf -lz -lyaml -lnl-3 -lpcre2-8 -lnghttp2 -lcurl -lssl -lcrypto
BPF_CFLAGS := -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_$(ARCH) -Wall -Wextra -Werror \
              -Wno-unused-parameter -Iinclude -Ibpf -I$(BUILD)

BPF_SRCS   := $(wildcard bpf/*.bpf.c)
BPF_OBJS   := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.bpf.o,$(BPF_SRCS))
SKELS      := $(patsubst bpf/%.bpf.c,$(BUILD)/skel/%.skel.h,$(BPF_SRCS))

AGENT_SRCS := $(shell find agent -name '*.c' ! -name main.c | sort)
AGENT_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(AGENT_SRCS))
LIB        := $(BUILD)/libxmesh.a

UNIT_SRCS  := $(wildcard tests/unit/*.c)
UNIT_BIN   := $(BUILD)/tests/unit_tests
BPFT_SRCS  := $(wildcard tests/bpf/*.c) tests/unit/hbone_fixture.c # the HBONE world of the in-process tunnel test
BPFT_BIN   := $(BUILD)/tests/bpf_tests
TOOL_SRCS  := $(wildcard tests/tools/*.c)
TOOL_BINS  := $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(TOOL_SRCS))
BENCH_SRCS := $(wildcard bench/*.c)
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))

.PHONY: all deps test test-unit test-bpf test-e2e test-asan fuzz fuzz-targets demo bench vmtest image format lint clean tools
.DELETE_ON_ERROR:
.SECONDARY:

all: $(BUILD)/xmesh

deps: $(DEPS_STAMP)
$(DEPS_STAMP): scripts/install-deps.sh
	@scripts/install-deps.sh
	@mkdir -p $(BUILD) && touch $@

# CO-RE: vmlinux.h comes from the build machine's BTF; relocations make the objects run on other kernels.
$(BUILD)/vmlinux.h: | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/lib/*.h) $(wildcard include/xmesh/*.h) $(BUILD)/vmlinux.h
	@mkdir -p $(dir $@)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/skel/%.skel.h: $(BUILD)/bpf/%.bpf.o
	@mkdir -p $(dir $@)
	$(BPFTOOL) gen skeleton $< name $(subst -,_,$*) > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/%.o: %.c | $(SKELS) $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(AGENT_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/xmesh: $(BUILD)/obj/agent/main.o $(LIB)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# libhttp-parser is the HTTP/1 differential test's oracle, linked into the unit tests only.
$(UNIT_BIN): $(patsubst %.c,$(BUILD)/obj/%.o,$(UNIT_SRCS)) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) -lcriterion -lhttp_parser

$(BPFT_BIN): $(patsubst %.c,$(BUILD)/obj/%.o,$(BPFT_SRCS)) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) -lcriterion

# Test tools link only what they name here (xm-http parses with Debian's libhttp-parser, never the agent's).
TOOL_LDLIBS_xm-http      := -lhttp_parser -lcrypto
TOOL_LDLIBS_xm-http-load := -lhttp_parser

$(BUILD)/tools/%: tests/tools/%.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< -lpthread $(TOOL_LDLIBS_$*)

$(BUILD)/bench/%: bench/%.c $(wildcard bench/*.h) $(LIB) | $(SKELS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LIB) $(LDLIBS) -lm

tools: $(TOOL_BINS)

test: all $(UNIT_BIN) $(BPFT_BIN) $(TOOL_BINS)
	@scripts/run-tests.sh $(BUILD)

test-unit: $(UNIT_BIN)
	$(UNIT_BIN)

test-bpf: $(BPFT_BIN)
	$(BPFT_BIN)

test-e2e: all $(TOOL_BINS)
	@tests/e2e/run.sh $(BUILD)

# The agent library and the unit and BPF tests again, with ASan and UBSan, in their own build directory.
# The instrumentation hides value ranges from gcc's format-truncation check (false alarms); -O2 keeps it.
ASAN_BUILD  ?= build-asan
ASAN_CFLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined \
               -Wno-format-truncation
test-asan:
	@$(MAKE) --no-print-directory BUILD=$(ASAN_BUILD) SAN_CFLAGS='$(ASAN_CFLAGS)' \
		$(ASAN_BUILD)/tests/unit_tests $(ASAN_BUILD)/tests/bpf_tests
	@scripts/run-asan.sh $(ASAN_BUILD)

# libFuzzer: every tests/fuzz/fuzz_<name>.c is a target, seeded from tests/fuzz/corpus/<name>/, linked against
# the agent library built by clang with ASan+UBSan in its own build directory. `make fuzz` runs each target
# for FUZZ_SECONDS.
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS  := -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
                -fno-sanitize-recover=undefined
FUZZ_SRCS    := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS    := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))

$(BUILD)/fuzz/%: tests/fuzz/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer -o $@ $< $(LIB) $(LDLIBS)

fuzz-targets: $(FUZZ_BINS)

fuzz:
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=clang SAN_CFLAGS='$(FUZZ_CFLAGS)' fuzz-targets
	@scripts/run-fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

demo: all $(TOOL_BINS)
	@scripts/demo.sh $(BUILD) $(ARGS)

bench: all $(TOOL_BINS) $(BENCH_BINS)
	@scripts/bench.sh $(BUILD) $(ARGS)

vmtest: all $(BPFT_BIN)
	@vmtests/run-matrix.sh $(BUILD)

# The agent's OCI image from Debian packages only: build/xmesh-image.tar (docs/kubernetes.md, "Image").
image: all $(DEPS_STAMP)
	@scripts/build-image.sh $(BUILD) $(IMAGE)

FORMAT_SRCS = $(shell find agent include bpf tests bench -name '*.[ch]' 2>/dev/null)
format:
	clang-format -i $(FORMAT_SRCS)

# cppcheck reads the system headers too (libbpf and criterion macros) but reports only on ours.
lint: $(SKELS)
	@clang-format --dry-run --Werror $(FORMAT_SRCS)
	cppcheck -j2 --quiet --error-exitcode=1 --std=c11 --enable=warning,portability,performance \
		--inline-suppr --suppress=missingIncludeSystem --suppress='*:/usr/include/*' \
		-Iinclude -Iagent -I$(BUILD) -I/usr/include -D__x86_64__ -D__linux__ \
		$(AGENT_SRCS) agent/main.c $(UNIT_SRCS) $(BPFT_SRCS) $(TOOL_SRCS) $(BENCH_SRCS) $(FUZZ_SRCS)

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
