# The C side without Ruby: the engine as a static and a shared library, its
# header, a pkg-config file, the redis-ipc command-line tool and the C
# example. `make` builds into build/; `make install PREFIX=/usr/local`.
CC ?= cc
PREFIX ?= /usr/local
BUILD ?= build
VERSION := $(shell sed -n 's/.*VERSION = "\(.*\)".*/\1/p' lib/redis_ipc/version.rb)

# hiredis, as extconf.rb looks for it: a hiredis >= 1.0 with hiredis_ssl
# that pkg-config finds (TLS); else hiredis 1.0.2 with SSL built into
# $(BUILD)/hiredis from the hiredis-client gem's source (TLS); TLS=0 (or no
# gem to build from) takes the system's hiredis, whatever its version.
TLS ?= 1
SYSTEM_TLS := $(shell pkg-config --atleast-version=1.0 hiredis 2>/dev/null && pkg-config --exists hiredis_ssl 2>/dev/null && echo yes)
ifeq ($(TLS)$(SYSTEM_TLS),1yes)
HIREDIS_CFLAGS := $(shell pkg-config --cflags hiredis_ssl hiredis | sed 's|-I\([^ ]*\)/hiredis|-I\1 -I\1/hiredis|g') -DRIPC_HAVE_TLS=1
HIREDIS_LIBS := $(shell pkg-config --libs hiredis_ssl hiredis) -lssl -lcrypto
HIREDIS_DEP :=
PC_REQUIRES := hiredis_ssl hiredis
PC_LIBS_PRIVATE := -lssl -lcrypto -lpthread
else ifeq ($(TLS),1)
# Ruby finds the gem (through Bundler inside this checkout).
RUBY_RUN := $(if $(wildcard Gemfile),bundle exec ruby,ruby)
-include $(BUILD)/hiredis/flags.mk
HIREDIS_DEP := $(BUILD)/hiredis/flags.mk
PC_REQUIRES :=
PC_LIBS_PRIVATE := -lssl -lcrypto -lpthread
else
HIREDIS_CFLAGS := $(shell pkg-config --cflags hiredis 2>/dev/null | sed 's|-I\([^ ]*\)/hiredis|-I\1 -I\1/hiredis|g')
HIREDIS_LIBS := $(shell pkg-config --libs hiredis 2>/dev/null || echo -lhiredis)
HIREDIS_DEP :=
PC_REQUIRES := hiredis
PC_LIBS_PRIVATE := -lpthread
endif
CFLAGS ?= -O2 -g
WARNINGS := -Wall -Wextra -Werror -Wno-unused-parameter
ALL_CFLAGS := -std=gnu11 -fPIC -fvisibility=hidden $(WARNINGS) $(CFLAGS) $(HIREDIS_CFLAGS) -Iext/redis_ipc/engine
LIBS := $(HIREDIS_LIBS) -lpthread

ENGINE_SRC := $(wildcard ext/redis_ipc/engine/*.c)
ENGINE_OBJ := $(patsubst ext/redis_ipc/engine/%.c,$(BUILD)/obj/%.o,$(ENGINE_SRC))

.PHONY: all clean install hiredis
all: $(BUILD)/libredis_ipc.a $(BUILD)/libredis_ipc.so $(BUILD)/include/redis_ipc.h $(BUILD)/redis_ipc.pc \
     $(BUILD)/redis-ipc $(BUILD)/echo_peer

hiredis: $(BUILD)/hiredis/flags.mk
$(BUILD)/hiredis/flags.mk: ext/redis_ipc/hiredis_build.rb
	$(RUBY_RUN) ext/redis_ipc/hiredis_build.rb $(BUILD)/hiredis

$(BUILD)/obj/%.o: ext/redis_ipc/engine/%.c $(wildcard ext/redis_ipc/engine/*.h) $(HIREDIS_DEP) | $(BUILD)/obj
	$(CC) $(ALL_CFLAGS) -DRIPC_BUILDING_LIBRARY -c $< -o $@

$(BUILD)/obj:
	mkdir -p $@

$(BUILD)/libredis_ipc.a: $(ENGINE_OBJ) $(HIREDIS_OBJS)
	$(AR) rcs $@ $^

$(BUILD)/libredis_ipc.so: $(ENGINE_OBJ)
	$(CC) -shared -Wl,-soname,libredis_ipc.so.0 -Wl,--exclude-libs,ALL -o $@ $^ $(LIBS)

$(BUILD)/include/redis_ipc.h: ext/redis_ipc/engine/redis_ipc.h
	mkdir -p $(dir $@)
	cp $< $@

$(BUILD)/redis_ipc.pc: Makefile
	printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: redis_ipc\nDescription: request/reply between processes over a Redis stream\nVersion: %s\nRequires.private: %s\nLibs: -L$${libdir} -lredis_ipc\nLibs.private: %s\nCflags: -I$${includedir}\n' \
	  "$(PREFIX)" "$(VERSION)" "$(PC_REQUIRES)" "$(PC_LIBS_PRIVATE)" > $@

# The tool and the example link the static library: no install needed to run them.
$(BUILD)/redis-ipc: $(wildcard cli/*.c cli/*.h) $(BUILD)/libredis_ipc.a
	$(CC) $(ALL_CFLAGS) -Icli -o $@ $(wildcard cli/*.c) $(BUILD)/libredis_ipc.a $(LIBS)

$(BUILD)/echo_peer: examples/c/echo_peer.c $(BUILD)/libredis_ipc.a
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libredis_ipc.a $(LIBS)

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 644 $(BUILD)/libredis_ipc.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libredis_ipc.so $(DESTDIR)$(PREFIX)/lib/libredis_ipc.so.0
	ln -sf libredis_ipc.so.0 $(DESTDIR)$(PREFIX)/lib/libredis_ipc.so
	install -m 644 $(BUILD)/include/redis_ipc.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/redis_ipc.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/
	install -m 755 $(BUILD)/redis-ipc $(DESTDIR)$(PREFIX)/bin/

clean:
	rm -rf $(BUILD)
