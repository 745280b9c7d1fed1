# frozen_string_literal: true

require "mkmf"
require "shellwords"
require_relative "hiredis_build"

# The engine (engine/, plain C) and the Ruby binding (ruby/) build into one
# shared object; each folder is a layer of the design.
engine_dir = File.join(__dir__, "engine")
binding_dir = File.join(__dir__, "ruby")
$srcs = Dir[File.join(engine_dir, "*.c")] + Dir[File.join(binding_dir, "*.c")]
$srcs = $srcs.map { |f| File.basename(f) }.sort
$VPATH << "$(srcdir)/engine" << "$(srcdir)/ruby"
$INCFLAGS << " -I$(srcdir)/engine -I$(srcdir)/ruby"

# Where hiredis comes from, first match wins (README, "Building"):
#   1. --with-hiredis-dir=PREFIX (or --with-hiredis-include/-lib): that copy,
#      whatever its version (0.14 builds without TLS).
#   2. REDIS_IPC_HIREDIS=system: the system's hiredis (pkg-config, then the
#      compiler's paths), whatever its version.
#   3. A hiredis >= 1.0 with hiredis_ssl that pkg-config finds (the system's,
#      or one named by PKG_CONFIG_PATH).
#   4. hiredis 1.0.2 with SSL, built from the hiredis-client gem's source.
#   5. Any system hiredis, without TLS (a warning says so).
# REDIS_IPC_HIREDIS=gem skips 3 and 5 (the gem's copy or nothing).
CHOICE = ENV.fetch("REDIS_IPC_HIREDIS", "auto")
abort "REDIS_IPC_HIREDIS must be auto, system or gem, got #{CHOICE.inspect}" unless %w[auto system gem].include?(CHOICE)

def hiredis_missing!(why)
  abort <<~MSG

    redis_ipc could not find hiredis (#{why}).
    It builds hiredis 1.x with TLS from the hiredis-client gem's source when it
    can (needs OpenSSL's headers), or uses a system hiredis:
      Debian/Ubuntu:  sudo apt-get install libssl-dev   (or libhiredis-dev, no TLS before 1.0)
      Fedora/RHEL:    sudo dnf install openssl-devel hiredis-devel
      macOS:          brew install openssl hiredis
    Or point to a copy with --with-hiredis-dir=/path/to/prefix.
  MSG
end

# A library folder given by pkg-config or --with-hiredis-dir goes before
# the default ones (mkmf puts $LIBPATH after them, so a system hiredis 0.14
# would be linked instead), and into the run path for its shared libraries.
def prefer_lib_dir(dir)
  return if dir.nil? || dir.empty? || $DEFLIBPATH.include?(dir)

  $DEFLIBPATH.unshift(dir)
  $LDFLAGS << " -Wl,-rpath,#{Shellwords.escape(dir)}"
end

# pkg-config names the folder that holds hiredis.h (<prefix>/include/hiredis);
# the engine includes <hiredis/hiredis.h>, so the parent goes first too, and
# these folders go before the system's so that another copy wins over it.
def use_pkg_config(package)
  cflags = `pkg-config --cflags #{package} 2>/dev/null`
  return false unless $?.success?

  flags = Shellwords.split(`pkg-config --libs #{package}`)
  dirs = Shellwords.split(cflags).filter_map { |f| f.delete_prefix("-I") if f.start_with?("-I") }
  dirs = dirs.flat_map { |d| File.basename(d) == "hiredis" ? [File.dirname(d), d] : [d] }.uniq
  $INCFLAGS = "#{dirs.map { |d| "-I#{Shellwords.escape(d)}" }.join(" ")} #{$INCFLAGS}"
  flags.select { |f| f.start_with?("-L") }.each { |f| prefer_lib_dir(f.delete_prefix("-L")) }
  libs = flags.reject { |f| f.start_with?("-L") || $libs.split.include?(f) }
  $libs = [*libs, $libs].join(" ") # in pkg-config's order: hiredis_ssl before hiredis
  true
rescue SystemCallError
  false
end

def pkg_config_version(package)
  out = `pkg-config --modversion #{package} 2>/dev/null`.strip
  $?.success? && !out.empty? ? out : nil
rescue SystemCallError
  nil
end

def header_version
  major = try_constant("HIREDIS_MAJOR", "hiredis/hiredis.h") || 0
  minor = try_constant("HIREDIS_MINOR", "hiredis/hiredis.h") || 0
  patch = try_constant("HIREDIS_PATCH", "hiredis/hiredis.h") || 0
  [major, minor, patch]
end

def openssl_found?
  use_pkg_config("openssl") || (have_library("crypto") && have_library("ssl"))
  have_header("openssl/ssl.h") && have_library("ssl", "SSL_CTX_new") && have_library("crypto", "X509_verify_cert")
end

# Links the system (or --with-hiredis-dir) hiredis found by the compiler.
def use_found_hiredis
  have_header("hiredis/hiredis.h") && have_library("hiredis", "redisConnect")
end

def tls_with_found_hiredis
  header_version.first >= 1 && openssl_found? && have_header("hiredis/hiredis_ssl.h", ["hiredis/hiredis.h"]) &&
    have_library("hiredis_ssl", "redisInitiateSSL")
end

source = nil
tls = false
given_dir = with_config("hiredis-dir") || with_config("hiredis-include") || with_config("hiredis-lib")
if given_dir
  _, lib_dirs = dir_config("hiredis")
  lib_dirs.to_s.split(File::PATH_SEPARATOR).each { |dir| prefer_lib_dir(dir) }
  hiredis_missing!("not under --with-hiredis-dir") unless use_found_hiredis
  source = "--with-hiredis-dir"
  tls = tls_with_found_hiredis
elsif CHOICE == "system"
  use_pkg_config("hiredis")
  hiredis_missing!("REDIS_IPC_HIREDIS=system") unless use_found_hiredis
  source = "the system (REDIS_IPC_HIREDIS=system)"
  tls = tls_with_found_hiredis
else
  system_ssl = CHOICE == "auto" && Gem::Version.new(pkg_config_version("hiredis") || "0") >= Gem::Version.new("1.0") &&
               pkg_config_version("hiredis_ssl")
  if system_ssl && use_pkg_config("hiredis_ssl") && use_pkg_config("hiredis") && use_found_hiredis && tls_with_found_hiredis
    source = "pkg-config (#{`pkg-config --variable=prefix hiredis`.strip})"
    tls = true
  elsif openssl_found? && (built = HiredisBuild.build(File.join(Dir.pwd, "hiredis"), log: File.open("hiredis-build.log", "w")))
    $INCFLAGS = "-I#{Shellwords.escape(built.include_dir)} #{$INCFLAGS}"
    $LOCAL_LIBS = "#{built.libraries.map { |l| Shellwords.escape(l) }.join(" ")} #{$LOCAL_LIBS}"
    source = "the #{HiredisBuild::GEM} gem's source (#{built.source})"
    tls = true
  elsif CHOICE == "auto"
    use_pkg_config("hiredis")
    hiredis_missing!("no hiredis >= 1.0 with hiredis_ssl, no #{HiredisBuild::GEM} gem to build one from") unless use_found_hiredis
    source = "the system, without TLS (no #{HiredisBuild::GEM} gem or OpenSSL headers to build hiredis 1.x from: see hiredis-build.log)"
  else
    hiredis_missing!("REDIS_IPC_HIREDIS=gem, but the #{HiredisBuild::GEM} gem's hiredis did not build: see hiredis-build.log")
  end
end

$defs << "-DRIPC_HAVE_TLS=1" if tls
version = header_version.join(".")
message "redis_ipc: hiredis #{version} from #{source}; TLS: #{tls ? "yes" : "no (rediss:// and ssl: true raise RedisIPC::ConfigurationError)"}\n"

# Signed streams need OpenSSL's libcrypto (HMAC-SHA256), whichever hiredis
# was chosen; a build without it raises RedisIPC::ConfigurationError when
# signing keys are given, as one without TLS does for rediss://.
signing = have_header("openssl/evp.h") && have_library("crypto", "EVP_DigestSignInit")
$defs << "-DRIPC_HAVE_CRYPTO=1" if signing
message "redis_ipc: signed streams: #{signing ? "yes" : "no (no OpenSSL libcrypto headers)"}\n"

have_library("pthread") || abort("redis_ipc needs POSIX threads")

# A static hiredis stays inside this extension: its symbols are hidden and
# not exported, so another gem's hiredis in the same process cannot clash.
append_ldflags("-Wl,--exclude-libs,ALL")

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

# The redis-ipc tool, built with the extension so that `gem install` gives
# it: cli/*.c linked with the engine's objects (the binding's stay out) and
# the same hiredis, installed beside redis_ipc.so, where exe/redis-ipc finds
# it. Without the cli folder (a copy of ext/ alone) only the extension builds.
cli_dir = File.expand_path("../../cli", __dir__)
cli_sources = Dir[File.join(cli_dir, "*.c")].sort
unless cli_sources.empty?
  engine_objects = Dir[File.join(engine_dir, "*.c")].map { |f| File.basename(f, ".c") + ".#{$OBJEXT}" }.sort
  File.open("Makefile", "a") do |mk|
    mk.puts <<~MAKE

      # redis-ipc (extconf.rb)
      RIPC_CLI_SRCS = #{cli_sources.map { |f| Shellwords.escape(f) }.join(" ")}
      RIPC_CLI_HDRS = #{Dir[File.join(cli_dir, "*.h")].sort.map { |f| Shellwords.escape(f) }.join(" ")}
      RIPC_ENGINE_OBJS = #{engine_objects.join(" ")}
      all: redis-ipc
      redis-ipc: $(RIPC_CLI_SRCS) $(RIPC_CLI_HDRS) $(RIPC_ENGINE_OBJS)
      	$(ECHO) linking the redis-ipc tool
      	$(Q) $(CC) $(INCFLAGS) -I#{Shellwords.escape(cli_dir)} $(CPPFLAGS) $(CFLAGS) -o $@ $(RIPC_CLI_SRCS) $(RIPC_ENGINE_OBJS) $(LIBPATH) $(LDFLAGS) $(LOCAL_LIBS) #{$libs} -lpthread
      install-so: $(RUBYARCHDIR)/redis-ipc
      $(RUBYARCHDIR)/redis-ipc: redis-ipc
      	$(Q) $(MAKEDIRS) $(@D)
      	$(INSTALL_PROG) redis-ipc $(@D)
      clean-so::
      	-$(Q)$(RM) redis-ipc
    MAKE
  end
end
