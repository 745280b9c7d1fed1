# frozen_string_literal: true

require "etc"
require "json"
require "socket"
require "tmpdir"
require "fileutils"

# Shared by the benchmark scripts: a private redis-server, Redis counters,
# process measurements and percentiles.
module Bench
  module_function

  def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

  def free_port
    s = TCPServer.new("127.0.0.1", 0)
    s.addr[1]
  ensure
    s&.close
  end

  # Starts redis-server on a free loopback port; yields its url; stops it.
  def with_redis
    dir = Dir.mktmpdir("redis_ipc_bench")
    port = free_port
    pid = Process.spawn("redis-server", "--port", port.to_s, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                        "--dir", dir, out: File::NULL, err: File::NULL)
    100.times do
      begin
        TCPSocket.new("127.0.0.1", port).close
        break
      rescue SystemCallError
        sleep 0.05
      end
    end
    yield "redis://127.0.0.1:#{port}", port
  ensure
    if pid
      Process.kill(:TERM, pid)
      Process.wait(pid)
    end
    FileUtils.rm_rf(dir) if dir
  end

  # A raw RESP client for INFO, so measuring adds one known command.
  class Probe
    def initialize(port)
      @sock = TCPSocket.new("127.0.0.1", port)
    end

    def call(*args)
      @sock.write("*#{args.size}\r\n" + args.map { |a| "$#{a.bytesize}\r\n#{a}\r\n" }.join)
      read
    end

    def read
      line = @sock.gets
      case line[0]
      when "+", "-" then line[1..].chomp
      when ":" then line[1..].to_i
      when "$"
        n = line[1..].to_i
        n.negative? ? nil : @sock.read(n + 2).chomp
      when "*"
        n = line[1..].to_i
        n.negative? ? nil : Array.new(n) { read }
      end
    end

    # Total command calls so far, the INFO and XINFO STREAM calls made by
    # this probe excluded (the engine makes none).
    def command_calls
      info = call("INFO", "commandstats")
      total = 0
      info.each_line do |l|
        next unless l.start_with?("cmdstat_")

        name = l[/cmdstat_([^:]+)/, 1]
        calls = l[/calls=(\d+)/, 1].to_i
        total += calls unless %w[info xinfo|stream].include?(name)
      end
      total
    end

    # Entries ever written on a stream key (XINFO STREAM's entries-added,
    # Redis 7.0); 0 when the key does not exist.
    def entries_added(key)
      reply = call("XINFO", "STREAM", key)
      reply.is_a?(Array) ? reply.each_slice(2).to_h["entries-added"].to_i : 0
    end

    # Requests written so far on `to`'s direct lane (docs/wire.md, section
    # 7): compared with the round trips made meanwhile, the share of them
    # that took the lane rather than the shared stream.
    def lane_requests(stream, to) = entries_added("#{stream}:#{to}:requests")

    def per_command
      call("INFO", "commandstats").each_line.grep(/^cmdstat_/).to_h do |l|
        [l[/cmdstat_([^:]+)/, 1], l[/calls=(\d+)/, 1].to_i]
      end
    end
  end

  def rss_kb(pid = Process.pid)
    File.read("/proc/#{pid}/status")[/VmRSS:\s+(\d+)/, 1].to_i
  end

  # user + system CPU seconds of a process (all its threads)
  def cpu_seconds(pid)
    fields = File.read("/proc/#{pid}/stat").split(") ").last.split
    (fields[11].to_i + fields[12].to_i) / Etc.sysconf(Etc::SC_CLK_TCK).to_f
  end

  def percentile(sorted, p)
    return 0.0 if sorted.empty?

    sorted[[(sorted.size * p).ceil - 1, 0].max]
  end

  def median(values) = percentile(values.sort, 0.5)

  # Times `rounds` sequential round trips of `sender` to group "responder":
  # [{ p50_us:, p99_us: }, seconds they took in all].
  def sequential_latencies(sender, rounds)
    started = now
    latencies = Array.new(rounds) do
      t = now
      sender.send_to_group(content: 1, to: "responder")
      now - t
    end
    elapsed = now - started
    latencies.sort!
    [{ p50_us: percentile(latencies, 0.5) * 1e6, p99_us: percentile(latencies, 0.99) * 1e6 }, elapsed]
  end

  # Keeps `in_flight` requests to group "responder" outstanding for
  # `seconds`: from as many threads ("threads"), or from this one with
  # send_to_group_async ("async", its window filled first). Yields as the
  # measured time starts (for the counters to read then); returns
  # [round trips answered, seconds measured].
  def keep_in_flight(sender, kind, in_flight, seconds)
    window = Array.new(in_flight) { sender.send_to_group_async(content: 1, to: "responder") } if kind == "async"
    yield
    started = now
    stop_at = started + seconds
    done = if window
             answered = 0
             while now < stop_at
               window.shift.value
               answered += 1
               window << sender.send_to_group_async(content: 1, to: "responder")
             end
             answered
           else
             Array.new(in_flight) do
               Thread.new do
                 n = 0
                 n += 1 while now < stop_at && sender.send_to_group(content: 1, to: "responder")
                 n
               end
             end.sum(&:value)
           end
    elapsed = now - started
    window&.each(&:value)
    [done, elapsed]
  end

  def spawn_ruby(script, *args, env: {})
    lib = File.expand_path("../lib", __dir__)
    IO.popen(env, [RbConfig.ruby, "-I", lib, File.join(__dir__, script), *args.map(&:to_s)], "r+")
  end

  def progress(text)
    $stderr.print("\r\e[K#{text}")
    $stderr.flush
  end
end
