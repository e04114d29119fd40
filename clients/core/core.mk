# core.mk: the host-agnostic C core (dream_client, dream_worker, the generated
# protobuf-c code), for a host's Makefile to include. The including Makefile
# sets CORE_DIR (this folder) and BUILD (where objects go) and may override
# PROTO_DIR, CC, CFLAGS, PKG_CONFIG, PROTOC_C. It gets CORE_OBJECTS,
# CORE_CFLAGS (add the host's own -I...) and CORE_LDLIBS.
#
# Needs: gRPC core (libgrpc-dev), protobuf-c (protobuf-c-compiler,
# libprotobuf-c-dev) and pkg-config.

PROTO_DIR ?= $(CORE_DIR)/../../proto
PROTO = audiodream/v1/audiodream.proto
PROTOC_C ?= protoc-c
PKG_CONFIG ?= pkg-config
CORE_DEPS = grpc libprotobuf-c

CC ?= cc
CFLAGS ?= -O2 -g
CORE_WARN = -Wall -Wextra -Wno-unused-parameter -Wno-cast-function-type
# -fvisibility=hidden: only a host's entry point is exported, so gRPC and
# protobuf symbols cannot clash with another plugin's.
CORE_CFLAGS = -std=gnu11 -fPIC -fvisibility=hidden $(CORE_WARN) $(CFLAGS) \
    -I$(BUILD) -I$(CORE_DIR) $(shell $(PKG_CONFIG) --cflags $(CORE_DEPS))
CORE_LDLIBS = -Wl,--as-needed $(shell $(PKG_CONFIG) --libs $(CORE_DEPS)) -lpthread -lm

GEN_C = $(BUILD)/audiodream/v1/audiodream.pb-c.c
GEN_H = $(GEN_C:.c=.h)
CORE_OBJECTS = $(BUILD)/dream_client.o $(BUILD)/dream_worker.o $(BUILD)/audiodream.pb-c.o
CORE_HEADERS = $(CORE_DIR)/dream_client.h $(CORE_DIR)/dream_worker.h $(CORE_DIR)/dream_ring.h

# protoc-c 1.4 rejects proto3 `optional`. `optional T f = N;` is defined as a
# oneof holding only f (the wire format is the same: f is sent whenever it is
# set, even as 0), so the generator gets that spelling, in a copy.
$(BUILD)/proto/$(PROTO): $(PROTO_DIR)/$(PROTO)
	@mkdir -p $(dir $@)
	sed -E 's/^([[:space:]]*)optional[[:space:]]+([A-Za-z0-9_.]+)[[:space:]]+([A-Za-z0-9_]+)[[:space:]]*=[[:space:]]*([0-9]+);/\1oneof opt_\3 { \2 \3 = \4; }/' $< > $@

$(GEN_C): $(BUILD)/proto/$(PROTO)
	$(PROTOC_C) -I$(BUILD)/proto --c_out=$(BUILD) $<
$(GEN_H): $(GEN_C) ;

$(BUILD)/audiodream.pb-c.o: $(GEN_C) $(GEN_H)
	$(CC) $(CORE_CFLAGS) -Wno-missing-braces -c -o $@ $<

$(BUILD)/dream_client.o: $(CORE_DIR)/dream_client.c $(CORE_DIR)/dream_client.h $(GEN_H)
	$(CC) $(CORE_CFLAGS) -c -o $@ $<

$(BUILD)/dream_worker.o: $(CORE_DIR)/dream_worker.c $(CORE_HEADERS)
	@mkdir -p $(BUILD)
	$(CC) $(CORE_CFLAGS) -c -o $@ $<
