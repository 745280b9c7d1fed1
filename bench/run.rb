# frozen_string_literal: true

# rake bench: the figures of the README's performance table, in one run
# against a private redis-server on loopback TCP. Prints a table and writes
# JSON (path in BENCH_JSON, default tmp/bench.json).
#
#   BENCH_SECONDS  seconds per throughput measurement (default 2)
#   BENCH_ROUNDS   sequential round trips per run (default 3000)
#   BENCH_RUNS     runs of each measurement; medians are reported (default 5)
require_relative "support"
require "redis_ipc"

SECONDS_EACH = Float(ENV.fetch("BENCH_SECONDS", "2"))
ROUNDS = Integer(ENV.fetch("BENCH_ROUNDS", "3000"))
RUNS = Integer(ENV.fetch("BENCH_RUNS", "5"))
STREAM = "bench_#{Process.pid}"

def ping_floor(port)
  out = `redis-benchmark -h 127.0.0.1 -p #{port} -t ping_mbulk -c 1 -n 20000 --csv 2>/dev/null`
  row = out.lines.last.to_s.split(",").map { |f| f.delete('"') }
  # "test","rps","avg","min","p50","p95","p99","max" (milliseconds)
  { p50_us: row[4].to_f * 1000, p99_us: row[6].to_f * 1000 }
end

def sequential(sender, probe)
  200.times { sender.send_to_group(content: 1, to: "responder") }
  calls = probe.command_calls
  latencies = Array.new(ROUNDS) do
    t = Bench.now
    sender.send_to_group(content: 1, to: "responder")
    Bench.now - t
  end
  commands = probe.command_calls - calls
  latencies.sort!
  { p50_us: Bench.percentile(latencies, 0.5) * 1e6, p99_us: Bench.percentile(latencies, 0.99) * 1e6,
    commands_per_round_trip: commands.to_f / ROUNDS }
end

# Round trips/s with `in_flight` requests outstanding, kept by threads.
def threaded(sender, probe, in_flight)
  done = 0
  lock = Mutex.new
  stop_at = Bench.now + SECONDS_EACH
  calls = probe.command_calls
  started = Bench.now
  in_flight.times.map do
    Thread.new do
      n = 0
      n += 1 while Bench.now < stop_at && sender.send_to_group(content: 1, to: "responder")
      lock.synchronize { done += n }
    end
  end.each(&:join)
  elapsed = Bench.now - started
  { round_trips_per_s: done / elapsed, commands_per_round_trip: (probe.command_calls - calls).to_f / done }
end

# Round trips/s with `in_flight` requests outstanding, kept by one thread with the async API.
def async(sender, probe, in_flight)
  window = Array.new(in_flight) { sender.send_to_group_async(content: 1, to: "responder") }
  done = 0
  calls = probe.command_calls
  started = Bench.now
  stop_at = started + SECONDS_EACH
  while Bench.now < stop_at
    window.shift.value
    done += 1
    window << sender.send_to_group_async(content: 1, to: "responder")
  end
  elapsed = Bench.now - started
  window.each(&:value)
  { round_trips_per_s: done / elapsed, commands_per_round_trip: (probe.command_calls - calls).to_f / done }
end

def idle_cost(url, probe)
  io = Bench.spawn_ruby("idle.rb", url, STREAM, "idle")
  io.gets
  sleep 1
  calls = probe.command_calls
  cpu = Bench.cpu_seconds(io.pid)
  sleep 5
  result = { commands_per_s: (probe.command_calls - calls) / 5.0, cpu_percent: (Bench.cpu_seconds(io.pid) - cpu) / 5.0 * 100 }
  io.close_write
  io.read
  io.close
  result
end

def medians(runs)
  runs.first.keys.to_h { |k| [k, Bench.median(runs.map { |r| r[k] })] }
end

results = {}
Bench.with_redis do |url, port|
  probe = Bench::Probe.new(port)
  Bench.progress("idle cost (5 s)...")
  results[:idle] = idle_cost(url, probe)

  responder = Bench.spawn_ruby("responder.rb", url, STREAM, "responder")
  responder.gets
  sender = RedisIPC::Stream.new(STREAM, "sender").on_request { nil }
  sender.connect(redis_options: { url: url }, ledger: { entry_timeout: 30 })
  rss_before = { sender_kb: Bench.rss_kb, responder_kb: Bench.rss_kb(responder.pid) }

  ping = []
  seq = []
  RUNS.times do |run|
    Bench.progress("run #{run + 1}/#{RUNS}: PING floor...")
    ping << ping_floor(port)
    Bench.progress("run #{run + 1}/#{RUNS}: sequential send_to_group x#{ROUNDS}...")
    seq << sequential(sender, probe)
  end
  results[:ping] = medians(ping)
  results[:sequential] = medians(seq)
  results[:sequential][:ratio_to_ping] = results[:sequential][:p50_us] / results[:ping][:p50_us]

  results[:throughput] = {}
  [["threads", 1], ["threads", 8], ["threads", 64], ["async", 8], ["async", 64]].each do |kind, n|
    runs = Array.new(RUNS) do |run|
      Bench.progress("run #{run + 1}/#{RUNS}: #{n} in flight (#{kind}, #{SECONDS_EACH}s)...")
      kind == "threads" ? threaded(sender, probe, n) : async(sender, probe, n)
    end
    results[:throughput]["#{kind}_#{n}"] = medians(runs)
  end

  results[:rss] = { before: rss_before, after: { sender_kb: Bench.rss_kb, responder_kb: Bench.rss_kb(responder.pid) } }
  sender.disconnect
  responder.close_write
  responder.read
  responder.close
end
Bench.progress("")

t = results[:throughput]
ping = results[:ping]
seq = results[:sequential]
rows = [
  ["Redis PING round trip (floor)", format("p50 %.0f µs, p99 %.0f µs", ping[:p50_us], ping[:p99_us])],
  ["sequential send_to_group", format("p50 %.0f µs (%.2fx PING), p99 %.0f µs", seq[:p50_us], seq[:ratio_to_ping], seq[:p99_us])],
  ["Redis commands per round trip, sequential", format("%.2f", seq[:commands_per_round_trip])],
  *t.map { |k, v| ["round trips/s, #{k.sub("_", " x")} in flight", format("%.0f (%.2f commands each)", v[:round_trips_per_s], v[:commands_per_round_trip])] },
  ["idle process: Redis commands/s", format("%.1f", results[:idle][:commands_per_s])],
  ["idle process: CPU", format("%.2f %%", results[:idle][:cpu_percent])],
  ["RSS sender before -> after", format("%d -> %d KB", results[:rss][:before][:sender_kb], results[:rss][:after][:sender_kb])],
  ["RSS responder before -> after", format("%d -> %d KB", results[:rss][:before][:responder_kb], results[:rss][:after][:responder_kb])]
]
width = rows.map { |r| r[0].size }.max
puts "redis_ipc benchmark (medians of #{RUNS} runs; Redis on loopback TCP; #{Etc.nprocessors} cores)"
rows.each { |name, value| puts "  #{name.ljust(width)}  #{value}" }
path = ENV.fetch("BENCH_JSON", File.expand_path("../tmp/bench.json", __dir__))
FileUtils.mkdir_p(File.dirname(path))
File.write(path, JSON.pretty_generate(results))
puts "  (JSON: #{path})"
