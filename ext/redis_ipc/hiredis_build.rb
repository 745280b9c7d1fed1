# frozen_string_literal: true

require "fileutils"
require "rbconfig"

# Builds hiredis 1.x with its SSL module from the source that the
# hiredis-client gem ships (a dependency of this gem, never loaded at run
# time), so that a platform whose hiredis is 0.14 (Debian 12) still gets
# TLS. Nothing of hiredis is kept in this repository: the source is read
# from the installed gem at build time. Used by extconf.rb and, run as a
# script, by the top-level Makefile (`ruby hiredis_build.rb OUTDIR`).
module HiredisBuild
  GEM = "hiredis-client"
  REQUIREMENT = [">= 0.22", "< 1"].freeze # as the gemspec pins it

  Result = Struct.new(:include_dir, :libraries, :version, :source, keyword_init: true)

  module_function

  # The folder with hiredis's C source inside the installed gem, or nil.
  def source_dir
    spec = Gem::Specification.find_by_name(GEM, *REQUIREMENT)
    dir = File.join(spec.gem_dir, "ext", "redis_client", "hiredis", "vendor")
    File.exist?(File.join(dir, "ssl.c")) ? dir : nil
  rescue Gem::MissingSpecError, Gem::LoadError
    nil
  end

  # Copies the source into out_dir/src (the gem's folder may be read-only,
  # and holds objects hiredis-client built with its own flags), builds the
  # two static libraries there with position-independent code and hidden
  # symbols, and lays the headers out as <hiredis/...>. Returns a Result,
  # or nil when the build fails (the log names why).
  def build(out_dir, source = source_dir, log: $stderr)
    return nil unless source

    src = File.join(out_dir, "src")
    include_dir = File.join(out_dir, "include")
    FileUtils.rm_rf(src)
    FileUtils.mkdir_p([src, File.join(include_dir, "hiredis")])
    FileUtils.cp(Dir[File.join(source, "*.{c,h}")] + [File.join(source, "Makefile")], src)
    FileUtils.cp(Dir[File.join(src, "*.h")], File.join(include_dir, "hiredis"))
    make = ENV["MAKE"] || (RUBY_PLATFORM.match?(/bsd|solaris/) ? "gmake" : "make")
    flags = ["USE_SSL=1", "OPTIMIZATION=-O2", "CFLAGS=-fvisibility=hidden #{openssl_cflags}".strip]
    flags << "CC=#{ENV.fetch("CC", RbConfig::CONFIG["CC"])}"
    ok = Dir.chdir(src) { system(make, "-s", "static", *flags, out: log, err: log) }
    return nil unless ok

    Result.new(include_dir: include_dir,
               libraries: [File.join(src, "libhiredis_ssl.a"), File.join(src, "libhiredis.a")],
               version: version_of(File.join(src, "hiredis.h")), source: source)
  end

  def openssl_cflags
    out = `pkg-config --cflags openssl 2>/dev/null`
    $?.success? ? out.strip : ""
  rescue SystemCallError
    ""
  end

  # "1.0.2" from the HIREDIS_MAJOR/MINOR/PATCH defines of a hiredis.h.
  def version_of(header)
    text = File.read(header)
    %w[MAJOR MINOR PATCH].map { |part| text[/#define HIREDIS_#{part} (\d+)/, 1] || "?" }.join(".")
  end
end

if $PROGRAM_NAME == __FILE__
  # The Makefile's `hiredis` target: build into ARGV[0], print the flags to use.
  out = File.expand_path(ARGV.fetch(0))
  result = HiredisBuild.build(out) or abort <<~MSG
    hiredis_build: could not build hiredis from the #{HiredisBuild::GEM} gem's source
    (install it with `gem install #{HiredisBuild::GEM}` or `bundle install`, and libssl-dev).
  MSG
  File.write(File.join(out, "flags.mk"), <<~MK)
    # Written by ext/redis_ipc/hiredis_build.rb: hiredis #{result.version} from #{result.source}
    HIREDIS_CFLAGS := -I#{result.include_dir} -DRIPC_HAVE_TLS=1
    HIREDIS_LIBS := #{result.libraries.join(" ")} -lssl -lcrypto
    # Into libredis_ipc.a too, so that a static link needs no hiredis of its own.
    HIREDIS_OBJS := #{Dir[File.join(out, "src", "*.o")].sort.join(" ")}
  MK
  puts "hiredis #{result.version} with TLS built in #{out}"
end
