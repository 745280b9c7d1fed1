# frozen_string_literal: true

require "spec_helper"
require "fileutils"
require "open3"
require "tmpdir"

# extconf.rb's choice of hiredis (README, "Building"): the system's 0.14
# when forced (no TLS, a clear error when TLS is asked for), and a hiredis
# 1.x installed under another prefix, named by PKG_CONFIG_PATH or
# --with-hiredis-dir, winning over the system's 0.14. Builds in temp folders.
RSpec.describe "Building the extension", timeout: 300 do
  root = File.expand_path("..", __dir__)
  let(:extconf) { File.join(root, "ext", "redis_ipc", "extconf.rb") }

  before(:all) do
    # The sanitizer and valgrind passes run the same suite: once is enough.
    skip "REDIS_IPC_SPEC_SKIP_BUILD is set" if ENV["REDIS_IPC_SPEC_SKIP_BUILD"]
    @tmp = Dir.mktmpdir("redis_ipc_build")
  end

  after(:all) { FileUtils.rm_rf(@tmp) if @tmp }

  # Runs extconf.rb and make in a folder of its own; returns extconf's line about hiredis.
  def build(name, env = {}, *args)
    dir = File.join(@tmp, name)
    FileUtils.mkdir_p(dir)
    env = { "LD_PRELOAD" => nil, "REDIS_IPC_DEBUG" => "1" }.merge(env)
    out, status = Open3.capture2e(env, RbConfig.ruby, extconf, *args, chdir: dir)
    raise "extconf failed:\n#{out}" unless status.success?

    made, status = Open3.capture2e(env, "make", "-s", chdir: dir)
    raise "make failed:\n#{made}" unless status.success?

    [out[/^redis_ipc: hiredis .*/], dir]
  end

  it "builds on the system's hiredis 0.14 when forced: everything but TLS works, and TLS raises ConfigurationError" do
    line, dir = build("system", "REDIS_IPC_HIREDIS" => "system")
    expect(line).to include("hiredis 0.14", "TLS: no")
    lib = File.join(dir, "lib")
    FileUtils.mkdir_p(File.join(lib, "redis_ipc"))
    FileUtils.cp(File.join(dir, "redis_ipc.so"), File.join(lib, "redis_ipc"))
    script = <<~RUBY
      require "redis_ipc"
      abort "TLS constant is \#{RedisIPC::Engine::TLS}" if RedisIPC::Engine::TLS
      s = RedisIPC::Stream.new("#{unique("build")}", "echo").on_request { |e| fulfill_request(e, content: e.content) }
      s.connect(redis_options: { path: "#{$redis_server&.socket}" })
      puts "round trip: \#{s.send_to_group(to: "echo", content: "plain").content}"
      s.disconnect
      begin
        RedisIPC::Stream.new("x", "g").on_request { nil }.connect(redis_options: { url: "rediss://127.0.0.1:1" })
      rescue RedisIPC::ConfigurationError => e
        puts "tls: \#{e.message}"
      end
    RUBY
    skip "needs the suite's own server" unless $redis_server
    out, status = Open3.capture2e({ "LD_PRELOAD" => nil }, RbConfig.ruby, "-I", lib, "-I", File.join(root, "lib"), "-e", script)
    expect(status).to be_success, out
    expect(out).to include("round trip: plain")
    expect(out).to match(/tls: TLS needs redis_ipc built on hiredis >= 1\.0 with hiredis_ssl; this one has hiredis 0\.14.*libssl-dev/)
  end

  it "finds a hiredis 1.x under a prefix named by PKG_CONFIG_PATH or --with-hiredis-dir, before the system's 0.14" do
    source = HiredisBuildSource.dir
    skip "no hiredis-client gem to install hiredis from" unless source
    prefix = File.join(@tmp, "prefix")
    src = File.join(@tmp, "hiredis-src")
    FileUtils.cp_r(source, src)
    FileUtils.rm_f(Dir[File.join(src, "*.{o,a,so}")]) # what hiredis-client built there with its own flags
    out, status = Open3.capture2e({ "LD_PRELOAD" => nil }, "make", "-s", "install", "USE_SSL=1", "PREFIX=#{prefix}", chdir: src)
    raise "hiredis install failed:\n#{out}" unless status.success?

    line, dir = build("pkg-config", "PKG_CONFIG_PATH" => File.join(prefix, "lib", "pkgconfig"))
    expect(line).to include("hiredis 1.0.2 from pkg-config (#{prefix})", "TLS: yes")
    # Linked against that copy, not the system's libhiredis.so.0.14.
    expect(`ldd #{dir}/redis_ipc.so`).to include("#{prefix}/lib/libhiredis.so.1.0.0").and include("libhiredis_ssl.so")
    line, dir = build("with-dir", {}, "--with-hiredis-dir=#{prefix}")
    expect(line).to include("hiredis 1.0.2 from --with-hiredis-dir", "TLS: yes")
    expect(`ldd #{dir}/redis_ipc.so`).to include("#{prefix}/lib/libhiredis.so.1.0.0")
  end
end

# Where the hiredis-client gem keeps hiredis's source (ext/redis_ipc/hiredis_build.rb).
module HiredisBuildSource
  def self.dir
    require File.expand_path("../ext/redis_ipc/hiredis_build", __dir__)
    HiredisBuild.source_dir
  end
end
