# frozen_string_literal: true

# rake bench: the figures of the README's performance table, in one run
# against a private redis-server on loopback TCP, each next to the C floor
# (bench/floor: the same request/reply written directly with hiredis)
# measured back to back with it; then the groups scenario (many groups on
# one stream, bench/groups_scenario.rb). Prints a table and writes JSON (path
# in BENCH_JSON, default tmp/bench.json).
#
#   BENCH_SECONDS  seconds per throughput measurement (default 2)
#   BENCH_ROUNDS   sequential round trips per run (default 3000)
#   BENCH_RUNS     runs of each measurement; medians are reported (default 5)
#   BENCH_SIGNING  1: the sender and the responder use a signed stream (README "Signed streams")
#   BENCH_GROUPS   groups on one stream in the groups scenario (default 100; bench/groups_scenario.rb)
require_relative "support"
require_relative "groups_scenario"
require "redis_ipc"

SECONDS_EACH = Float(ENV.fetch("BENCH_SECONDS", "2"))
ROUNDS = Integer(ENV.fetch("BENCH_ROUNDS", "3000"))
RUNS = Integer(ENV.fetch("BENCH_RUNS", "5"))
STREAM = "bench_#{Process.pid}"

def ping_round_trip(port)
  out = `redis-benchmark -h 127.0.0.1 -p #{port} -t ping_mbulk -c 1 -n 20000 --csv 2>/dev/null`
  row = out.lines.last.to_s.split(",").map { |f| f.delete('"') }
  # "test","rps","avg","min","p50","p95","p99","max" (milliseconds)
  { p50_us: row[4].to_f * 1000, p99_us: row[6].to_f * 1000 }
end

# The C floor's programs, on a stream of their own on the same server.
module Floor
  module_function

  DIR = File.join(__dir__, "floor")
  STREAM = "bench_floor_#{Process.pid}".freeze

  def program(name)
    path = File.join(DIR, name)
    abort "bench: #{path} is missing: build the C floor with `make -C bench/floor` (rake bench does)" unless File.executable?(path)
    path
  end

  def start_responder(port)
    io = IO.popen([program("responder"), "127.0.0.1", port.to_s, STREAM, "floor_responder"], "r")
    abort "bench: the C floor's responder did not start" unless io.gets == "ready\n"
    io
  end

  def stop_responder(io)
    Process.kill(:TERM, io.pid)
    io.read
    io.close
  end

  # Runs the requester once ("sequential", ROUNDS or "in-flight", K, SECONDS).
  def run(port, probe, *mode)
    calls = probe.command_calls
    out = IO.popen([program("requester"), "127.0.0.1", port.to_s, STREAM, "floor_requester", "floor_responder",
                    *mode.map(&:to_s)], &:read)
    abort "bench: the C floor's requester failed (#{mode.join(" ")})" unless $?.success?
    r = JSON.parse(out, symbolize_names: true)
    # the count includes its warm-up, as the Redis counters do
    commands = (probe.command_calls - calls).to_f / r[:round_trips_total]
    r.slice(:p50_us, :p99_us, :round_trips_per_s).merge(commands_per_round_trip: commands)
  end
end

# Each measurement also notes the share of its requests that took the
# responder's direct lane (docs/wire.md, section 7) rather than the shared
# stream, from the entries written on the lane (on_lane; 0 before the lanes).
def sequential(sender, probe)
  200.times { sender.send_to_group(content: 1, to: "responder") }
  lane = probe.lane_requests(STREAM, "responder")
  calls = probe.command_calls
  latency, = Bench.sequential_latencies(sender, ROUNDS)
  commands = probe.command_calls - calls
  latency.merge(commands_per_round_trip: commands.to_f / ROUNDS,
                on_lane: (probe.lane_requests(STREAM, "responder") - lane).to_f / ROUNDS)
end

# Round trips/s with `in_flight` requests outstanding, kept by threads or
# by one thread with the async API (Bench.keep_in_flight).
def in_flight(sender, probe, kind, in_flight)
  lane = calls = nil
  done, elapsed = Bench.keep_in_flight(sender, kind, in_flight, SECONDS_EACH) do
    lane = probe.lane_requests(STREAM, "responder")
    calls = probe.command_calls
  end
  { round_trips_per_s: done / elapsed, commands_per_round_trip: (probe.command_calls - calls).to_f / done,
    on_lane: (probe.lane_requests(STREAM, "responder") - lane).to_f / done }
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

# Medians of each figure, and of each run's ratio of `key` to the floor's.
def with_floor(runs, floor_runs, key, ratio_name)
  medians(runs).merge(ratio_name => Bench.median(runs.zip(floor_runs).map { |r, f| r[key] / f[key] }))
end

results = {}
Bench.with_redis do |url, port|
  probe = Bench::Probe.new(port)
  Bench.progress("idle cost (5 s)...")
  results[:idle] = idle_cost(url, probe)

  responder = Bench.spawn_ruby("responder.rb", url, STREAM, "responder")
  responder.gets
  floor_responder = Floor.start_responder(port)
  sender = RedisIPC::Stream.new(STREAM, "sender").on_request { nil }
  signing = ENV["BENCH_SIGNING"] == "1" ? { signing: { keys: ["bench key"] } } : {}
  sender.connect(redis_options: { url: url }, ledger: { entry_timeout: 30 }, **signing)
  rss_before = { sender_kb: Bench.rss_kb, responder_kb: Bench.rss_kb(responder.pid) }

  ping = []
  floor_seq = []
  seq = []
  RUNS.times do |run|
    Bench.progress("run #{run + 1}/#{RUNS}: PING round trip...")
    ping << ping_round_trip(port)
    Bench.progress("run #{run + 1}/#{RUNS}: C floor, sequential x#{ROUNDS}...")
    floor_seq << Floor.run(port, probe, "sequential", ROUNDS)
    Bench.progress("run #{run + 1}/#{RUNS}: sequential send_to_group x#{ROUNDS}...")
    seq << sequential(sender, probe)
  end
  results[:ping] = medians(ping)
  results[:floor] = { sequential: medians(floor_seq), in_flight: {} }
  results[:floor][:sequential][:ratio_to_ping] = results[:floor][:sequential][:p50_us] / results[:ping][:p50_us]
  results[:sequential] = with_floor(seq, floor_seq, :p50_us, :ratio_to_floor)
  results[:sequential][:ratio_to_ping] = results[:sequential][:p50_us] / results[:ping][:p50_us]

  # Each depth's runs go floor, threads, async, back to back, so that the
  # machine's noise lands on both sides of a ratio.
  results[:throughput] = {}
  { 1 => %w[threads], 8 => %w[threads async], 64 => %w[threads async] }.each do |n, kinds|
    floor_runs = []
    runs = kinds.to_h { |kind| [kind, []] }
    RUNS.times do |run|
      Bench.progress("run #{run + 1}/#{RUNS}: C floor, #{n} in flight (#{SECONDS_EACH}s)...")
      floor_runs << Floor.run(port, probe, "in-flight", n, SECONDS_EACH)
      kinds.each do |kind|
        Bench.progress("run #{run + 1}/#{RUNS}: #{n} in flight (#{kind}, #{SECONDS_EACH}s)...")
        runs[kind] << in_flight(sender, probe, kind, n)
      end
    end
    results[:floor][:in_flight][n.to_s] = medians(floor_runs)
    kinds.each do |kind|
      results[:throughput]["#{kind}_#{n}"] = with_floor(runs[kind], floor_runs, :round_trips_per_s, :fraction_of_floor)
    end
  end

  results[:rss] = { before: rss_before, after: { sender_kb: Bench.rss_kb, responder_kb: Bench.rss_kb(responder.pid) } }
  sender.disconnect
  Floor.stop_responder(floor_responder)
  responder.close_write
  responder.read
  responder.close

  results[:groups] = GroupsScenario.run(url, port, probe)
end
Bench.progress("")

t = results[:throughput]
ping = results[:ping]
floor = results[:floor]
fseq = floor[:sequential]
seq = results[:sequential]
rows = [
  ["Redis PING round trip", format("p50 %.0f µs, p99 %.0f µs", ping[:p50_us], ping[:p99_us])],
  ["C floor: sequential round trip", format("p50 %.0f µs (%.2fx PING), p99 %.0f µs", fseq[:p50_us], fseq[:ratio_to_ping], fseq[:p99_us])],
  ["sequential send_to_group", format("p50 %.0f µs = %.2fx floor (%.2fx PING), p99 %.0f µs",
                                      seq[:p50_us], seq[:ratio_to_floor], seq[:ratio_to_ping], seq[:p99_us])],
  ["Redis commands per round trip, sequential", format("%.2f (floor %.2f)", seq[:commands_per_round_trip], fseq[:commands_per_round_trip])],
  ["requests on the direct lane, sequential", format("%.0f %%", seq[:on_lane] * 100)],
  *floor[:in_flight].map do |n, v|
    ["C floor: round trips/s, #{n} in flight", format("%.0f (%.2f commands each)", v[:round_trips_per_s], v[:commands_per_round_trip])]
  end,
  *t.map do |k, v|
    ["round trips/s, #{k.sub("_", " x")} in flight", format("%.0f = %.2f of floor (%.2f commands each, %.0f %% on the lane)",
                                                            v[:round_trips_per_s], v[:fraction_of_floor], v[:commands_per_round_trip],
                                                            v[:on_lane] * 100)]
  end,
  ["idle process: Redis commands/s", format("%.1f", results[:idle][:commands_per_s])],
  ["idle process: CPU", format("%.2f %%", results[:idle][:cpu_percent])],
  ["RSS sender before -> after", format("%d -> %d KB", results[:rss][:before][:sender_kb], results[:rss][:after][:sender_kb])],
  ["RSS responder before -> after", format("%d -> %d KB", results[:rss][:before][:responder_kb], results[:rss][:after][:responder_kb])],
  *GroupsScenario.rows(results[:groups])
]
width = rows.map { |r| r[0].size }.max
puts "redis_ipc benchmark#{" on a signed stream" if ENV["BENCH_SIGNING"] == "1"} (medians of #{RUNS} runs; ratios to the C floor: median of each run's, measured back to back; " \
     "Redis on loopback TCP; #{Etc.nprocessors} cores)"
rows.each { |name, value| puts "  #{name.ljust(width)}  #{value}" }
path = ENV.fetch("BENCH_JSON", File.expand_path("../tmp/bench.json", __dir__))
FileUtils.mkdir_p(File.dirname(path))
File.write(path, JSON.pretty_generate(results))
puts "  (JSON: #{path})"
