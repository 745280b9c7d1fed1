# frozen_string_literal: true

require_relative "support/tls_certificates"
require_relative "support/redis_server"

# Certificates for the TLS specs. Under REDIS_IPC_SPEC_TLS=1 the whole
# suite talks TLS: its CA goes into SSL_CERT_FILE before anything loads
# OpenSSL, so every client (this process, fixtures, C programs, redis-rb)
# trusts the suite's servers through the default CA store.
$tls_certificates = TLSCertificates.new
suite_pid = Process.pid
at_exit { $tls_certificates.cleanup if Process.pid == suite_pid }
ENV["SSL_CERT_FILE"] = $tls_certificates.ca_file if RedisServer.suite_tls?

# The sanitizer run of bin/test puts its build of the extension first.
$LOAD_PATH.unshift(ENV["REDIS_IPC_SPEC_LIB"]) if ENV["REDIS_IPC_SPEC_LIB"]
require "redis_ipc"
require "json"
require "open3"
require "redis"
require "securerandom"
require "timeout"

module SpecHelpers
  def redis_url
    $redis_url
  end

  # A plain Redis client for looking at what the gem wrote, or for playing a
  # foreign peer with raw commands.
  def raw_redis
    @raw_redis ||= Redis.new(url: redis_url)
  end

  # Runs the block with REDIS_URL unset, and leaves it as found: a rediss://
  # one left behind would turn the later CLI specs to TLS.
  def without_redis_url
    saved = ENV.delete("REDIS_URL")
    yield
  ensure
    saved ? ENV["REDIS_URL"] = saved : ENV.delete("REDIS_URL")
  end

  def unique(name)
    "#{name}_#{SecureRandom.hex(4)}"
  end

  def monotonic
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end

  # Entries a group holds pending, on the shared stream and on the group's
  # requests lane (docs/wire.md): requests between instances of this gem
  # take the lane once the sender knows the group's members.
  def pending_of(redis, stream, group)
    [stream, "#{stream}:#{group}:requests"].sum do |key|
      redis.xpending(key, group)["size"]
    rescue Redis::CommandError # not created yet
      0
    end
  end

  # Polls until the block is truthy (for observing another process), up to `within` seconds.
  def eventually(within: 5)
    deadline = monotonic + within
    loop do
      result = yield
      return result if result
      raise "condition not met within #{within}s" if monotonic > deadline

      sleep 0.01
    end
  end

  # A connected stream; disconnected after the example.
  def connected_stream(stream, group, errors: nil, **options, &handler)
    s = RedisIPC::Stream.new(stream, group)
    s.on_request(&(handler || proc { |entry| fulfill_request(entry, content: entry.content) }))
    s.on_error { |e| errors << e } if errors
    s.connect(redis_options: { url: redis_url }, **options)
    (@streams ||= []) << s
    s
  end

  # A connected stream whose handler waits until the returned gate is
  # pushed to, then answers with `content` (default: the request's content).
  def gated_stream(stream, group, content: nil, **options)
    gate = Queue.new
    s = connected_stream(stream, group, **options) do |entry|
      gate.pop
      fulfill_request(entry, content: content.nil? ? entry.content : content)
    end
    [s, gate]
  end

  # Starts a script of spec/fixtures that prints "ready ..." once connected;
  # returns its IO, also kept in @processes for the spec's cleanup.
  def start_fixture(script, *args, env: {})
    io = ruby_process(File.expand_path("fixtures/#{script}", __dir__), *args, env: env)
    line = io.gets
    raise "#{script} did not start: #{line.inspect}" unless line&.start_with?("ready")

    # "ready <instance id>": the id, for specs that look at its keys.
    instance_id = line.split[1]
    io.define_singleton_method(:instance_id) { instance_id }
    (@processes ||= []) << io
    io
  end

  # Runs the block in a forked child and returns what it returned, through
  # JSON (string keys); the child leaves with exit!, running no finalizer.
  # A child still running when the example ends (it timed out) is killed:
  # left behind, it would hold the suite's output open after the suite.
  def in_fork
    reader, writer = IO.pipe
    pid = fork do
      reader.close
      writer.write(JSON.generate(yield))
      writer.close
      exit!(0)
    end
    writer.close
    output = reader.read
    Process.wait(pid)
    pid = nil
    raise "the forked child ended without an outcome: #{$?.inspect}" if output.empty?

    JSON.parse(output)
  ensure
    if pid
      begin
        Process.kill(:KILL, pid)
        Process.wait(pid)
      rescue Errno::ESRCH, Errno::ECHILD
        nil
      end
    end
    reader&.close
  end

  # Lets each fixture process end as it does when its stdin closes, and
  # waits for it.
  def finish_processes
    (@processes || []).each do |io|
      io.close_write unless io.closed?
      io.read unless io.closed?
      io.close unless io.closed?
    end
  end

  # Kills the fixture processes still running (kill -9: no goodbye to
  # Redis) and reaps them; the suite does this after every example.
  def kill_processes
    (@processes || []).each do |io|
      next if io.closed? # finished by the example

      begin
        Process.kill(:KILL, io.pid)
        Process.wait(io.pid)
      rescue Errno::ESRCH, Errno::ECHILD
        nil
      end
      io.close unless io.closed?
    end
    @processes = nil
  end

  # build/: the C library, redis-ipc and the C example, made with `make` (once up to date, a no-op).
  def self.make_c_programs
    root = File.expand_path("..", __dir__)
    output, status = Open3.capture2e("make", "-s", "-C", root)
    raise "make failed:\n#{output}" unless status.success?

    File.join(root, "build")
  end

  # Kills (-9) and reaps the children of this process still running: at the
  # end of the suite, only a child an example left behind, say a forked one
  # stuck after the example timed out, which would hold the suite's output
  # open (and bin/test with it) after the suite.
  def self.kill_leftover_children
    Dir["/proc/[0-9]*/stat"].each do |stat|
      pid = File.basename(File.dirname(stat)).to_i
      next unless File.read(stat)[/\) \S (\d+)/, 1].to_i == Process.pid

      warn "spec_helper: killing process #{pid}, left running by the suite"
      Process.kill(:KILL, pid)
      Process.wait(pid)
    rescue Errno::ENOENT, Errno::ESRCH, Errno::ECHILD
      nil
    end
  end

  # Runs a Ruby script in a separate process with the gem on its load path.
  def ruby_process(script, *args, env: {})
    lib = File.expand_path("../lib", __dir__)
    extra = ENV["REDIS_IPC_SPEC_LIB"] ? ["-I", ENV["REDIS_IPC_SPEC_LIB"]] : []
    IO.popen({ "REDIS_URL" => redis_url }.merge(env), [RbConfig.ruby, *extra, "-I", lib, script, *args.map(&:to_s)],
             "r+", err: [:child, :out])
  end
end

RSpec.configure do |config|
  config.include SpecHelpers
  config.disable_monkey_patching!
  config.order = :defined

  config.before(:suite) do
    if ENV["REDIS_URL"].to_s.empty?
      $redis_server = RedisServer.new.start
      $redis_url = $redis_server.url
    else
      $redis_url = ENV["REDIS_URL"]
    end
  end

  config.after(:suite) do
    $redis_server&.stop
    SpecHelpers.kill_leftover_children
  end

  config.after do
    kill_processes
    (@streams || []).each(&:disconnect)
    @raw_redis&.close
  end

  # No example may hang the suite.
  config.around do |example|
    Timeout.timeout(example.metadata.fetch(:timeout, 60)) { example.run }
  end
end
