# frozen_string_literal: true

require "mkmf"

# The engine (engine/, plain C) and the Ruby binding (ruby/) build into one
# shared object; each folder is a layer of the design.
engine_dir = File.join(__dir__, "engine")
binding_dir = File.join(__dir__, "ruby")
$srcs = Dir[File.join(engine_dir, "*.c")] + Dir[File.join(binding_dir, "*.c")]
$srcs = $srcs.map { |f| File.basename(f) }.sort
$VPATH << "$(srcdir)/engine" << "$(srcdir)/ruby"
$INCFLAGS << " -I$(srcdir)/engine -I$(srcdir)/ruby"

def hiredis_missing!
  abort <<~MSG

    redis_ipc needs the hiredis C library (0.14 or newer) and its headers.
    Install them, then install the gem again:
      Debian/Ubuntu:  sudo apt-get install libhiredis-dev
      Fedora/RHEL:    sudo dnf install hiredis-devel
      macOS:          brew install hiredis
    Or point to a copy with --with-hiredis-dir=/path/to/prefix.
  MSG
end

# pkg-config first, then --with-hiredis-dir or the usual prefixes.
found = pkg_config("hiredis")
unless found
  dir_config("hiredis")
  found = have_header("hiredis/hiredis.h") && have_library("hiredis", "redisConnect")
end
hiredis_missing! unless found && have_header("hiredis/hiredis.h")

have_library("pthread") || abort("redis_ipc needs POSIX threads")

$CFLAGS << " -std=gnu11 -fvisibility=hidden -Wall -Wextra -Wno-unused-parameter"
if ENV["REDIS_IPC_DEBUG"] || ENV["CI"]
  # CI builds treat every warning as an error and keep symbols for valgrind/ASan.
  $CFLAGS << " -Werror -g -O0 -DRUBY_DEBUG=1"
end
if ENV["REDIS_IPC_ASAN"]
  # Heap and global checks only: Ruby raises with __builtin_longjmp, which
  # ASan cannot see, so the stack redzones of unwound frames would stay
  # poisoned and be reported later as false stack overflows.
  $CFLAGS << " -fsanitize=address,undefined --param=asan-stack=0 -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
  $LDFLAGS << " -fsanitize=address,undefined"
end

create_makefile("redis_ipc/redis_ipc")
