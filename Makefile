# iotpipe — build, test and run the suite.
#
#   make            release binaries into bin/
#   make asan       AddressSanitizer + UBSan binaries into build/asan/bin/ (the tests use these)
#   make test       unit + integration tests against the asan build; ends with "N passed, N failed"
#   make deps       install every build/test dependency from Debian packages (idempotent)
#
# Layout conventions the rules below rely on:
#   common/*.c                 -> libiotpipe.a, linked into every binary
#   services/<name>/*.c        -> bin/<name>            (main.c holds main())
#   tools/<name>/*.c           -> bin/<name>
#   tests/unit/<dir>/test_*.c  -> one cmocka binary each, linked with services/<dir>/*.c
#                                 minus main.c (or with common only, for dir "common")

VARIANT ?= release
CC      ?= cc
PKGS    := rdkafka jansson libpq libmicrohttpd zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpaho-mqtt3as -lm -lpthread

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-missing-field-initializers
CSTD    := -std=c11 -D_GNU_SOURCE
ifeq ($(VARIANT),asan)
OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDOPT   := -fsanitize=address,undefined
OUT     := build/asan
BINDIR  := build/asan/bin
else ifeq ($(VARIANT),fuzz)
CC      := clang
OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined,fuzzer-no-link
LDOPT   := -fsanitize=address,undefined
OUT     := build/fuzz
BINDIR  := build/fuzz/bin
else
OPT     := -O2 -g
LDOPT   :=
OUT     := build/release
BINDIR  := bin
endif

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
CFLAGS  += $(CSTD) $(WARN) $(OPT) -Icommon -I$(OUT)/gen $(PKG_CFLAGS) -DIOTPIPE_VERSION='"$(VERSION)"' -MMD -MP
LDFLAGS += $(LDOPT)
LDLIBS  += $(PKG_LIBS)

SCHEMAS     := $(sort $(wildcard schemas/*.avsc schemas/history/*.avsc))
GEN_SCHEMAS := $(OUT)/gen/schemas_embedded.c
COMMON_SRC  := $(sort $(wildcard common/*.c))
COMMON_OBJ  := $(COMMON_SRC:%.c=$(OUT)/%.o) $(OUT)/gen/schemas_embedded.o
LIB         := $(OUT)/libiotpipe.a

SERVICES := $(notdir $(patsubst %/,%,$(sort $(dir $(wildcard services/*/main.c)))))
TOOLS    := $(notdir $(patsubst %/,%,$(sort $(dir $(wildcard tools/*/main.c)))))
PROGS    := $(SERVICES) $(TOOLS)
BINS     := $(PROGS:%=$(BINDIR)/%)

UNIT_SRC  := $(sort $(wildcard tests/unit/*/test_*.c))
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(OUT)/unit/%)

.PHONY: all asan test units fuzzers deps clean fuzz bench demo chaos format image-check
all: $(BINS)

asan:
	@$(MAKE) --no-print-directory VARIANT=asan all units

units: $(UNIT_BINS)

$(OUT)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(GEN_SCHEMAS): $(SCHEMAS) tools/embed-schemas.sh
	@mkdir -p $(dir $@)
	sh tools/embed-schemas.sh $(SCHEMAS) > $@.tmp && mv $@.tmp $@

$(OUT)/gen/schemas_embedded.o: $(GEN_SCHEMAS)
	$(CC) $(CFLAGS) -c -o $@ $<

$(LIB): $(COMMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

# A program is every .c in its folder; objects other than main.o also feed its unit tests.
define prog_rule
$(1)_DIR := $(wildcard services/$(1) tools/$(1))
$(1)_OBJ := $$(patsubst %.c,$(OUT)/%.o,$$(wildcard $$($(1)_DIR)/*.c))
$(BINDIR)/$(1): $$($(1)_OBJ) $(LIB)
	@mkdir -p $(BINDIR)
	$(CC) $(LDFLAGS) -o $$@ $$^ $(LDLIBS)
endef
$(foreach p,$(PROGS),$(eval $(call prog_rule,$(p))))

define unit_rule
$(OUT)/unit/$(1)/%: tests/unit/$(1)/%.c $$(filter-out %/main.o,$$(patsubst %.c,$(OUT)/%.o,$$(wildcard services/$(1)/*.c tools/$(1)/*.c))) $(LIB)
	@mkdir -p $$(dir $$@)
	$(CC) $(CFLAGS) -Iservices/$(1) -Itools/$(1) $(LDFLAGS) -o $$@ $$(filter %.c %.o %.a,$$^) $(LDLIBS) -lcmocka
endef
$(foreach d,$(notdir $(patsubst %/,%,$(sort $(dir $(UNIT_SRC))))),$(eval $(call unit_rule,$(d))))

# libFuzzer targets: tests/fuzz/fuzz_<dir>_<what>.c links with services/<dir> (minus main.c),
# or with common only when <dir> is "common".
FUZZ_SRC  := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_SRC:tests/fuzz/%.c=$(OUT)/fuzz/%)
fuzzers: $(FUZZ_BINS)

define fuzz_rule
$(OUT)/fuzz/$(1): tests/fuzz/$(1).c $$(filter-out %/main.o,$$(patsubst %.c,$(OUT)/%.o,$$(wildcard services/$(2)/*.c tools/$(2)/*.c))) $(LIB)
	@mkdir -p $$(dir $$@)
	$(CC) $(CFLAGS) -Iservices/$(2) -Itools/$(2) -fsanitize=fuzzer $(LDFLAGS) -o $$@ $$(filter %.c %.o %.a,$$^) $(LDLIBS)
endef
$(foreach f,$(FUZZ_SRC:tests/fuzz/%.c=%),$(eval $(call fuzz_rule,$(f),$(word 2,$(subst _, ,$(f))))))

# The test command of the README. Builds the sanitized variant, then runs everything.
test: asan
	@bash tests/run.sh $(TESTS)

deps:
	@bash tools/deps.sh

fuzz:
	@$(MAKE) --no-print-directory VARIANT=fuzz fuzzers
	@bash tests/fuzz/run.sh $(FUZZ_SECONDS)

bench: all
	@bash bench/run.sh

# No build prerequisite: on a fresh machine the script installs the dependencies first, then builds.
demo:
	@bash tools/demo.sh $(DURATION)

chaos: all asan
	@bash tests/chaos/run.sh

image-check: all
	@bash tools/image-check.sh bin

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
