# frozen_string_literal: true

# rake soak: 1,000,000 round trips (SOAK_ROUND_TRIPS) between two processes,
# 64 in flight through the async API, with the RSS of both sampled along the
# way. Reports the growth after warm-up; the target is under 5 MB.
require_relative "support"
require "redis_ipc"

TOTAL = Integer(ENV.fetch("SOAK_ROUND_TRIPS", "1000000"))
IN_FLIGHT = 64
SAMPLES = 10
STREAM = "soak_#{Process.pid}"

Bench.with_redis do |url, _port|
  responder = Bench.spawn_ruby("responder.rb", url, STREAM, "responder")
  responder.gets
  sender = RedisIPC::Stream.new(STREAM, "sender").on_request { nil }
  sender.connect(redis_options: { url: url }, ledger: { entry_timeout: 30 })
  window = Array.new(IN_FLIGHT) { |i| sender.send_to_group_async(content: { "i" => i, "pad" => "x" * 64 }, to: "responder") }
  samples = []
  started = Bench.now
  done = 0
  step = TOTAL / SAMPLES
  while done < TOTAL
    reply = window.shift.value
    raise "bad reply #{reply.inspect}" unless reply.fulfilled?

    done += 1
    window << sender.send_to_group_async(content: { "i" => done, "pad" => "x" * 64 }, to: "responder") if done + window.size < TOTAL + 1
    next unless (done % step).zero?

    samples << { round_trips: done, seconds: (Bench.now - started).round(1),
                 sender_kb: Bench.rss_kb, responder_kb: Bench.rss_kb(responder.pid) }
    s = samples.last
    Bench.progress("#{done} round trips, #{s[:seconds]}s, RSS sender #{s[:sender_kb]} KB, responder #{s[:responder_kb]} KB")
  end
  window.each(&:value)
  elapsed = Bench.now - started
  stats = sender.stats
  sender.disconnect
  responder.close_write
  responder.read
  responder.close
  Bench.progress("")

  base = samples.first
  last = samples.last
  puts "soak: #{done} round trips in #{elapsed.round(1)}s (#{(done / elapsed).round} /s, #{IN_FLIGHT} in flight)"
  puts "  round trips   seconds   sender RSS KB   responder RSS KB"
  samples.each { |s| puts format("  %11d   %7.1f   %13d   %16d", s[:round_trips], s[:seconds], s[:sender_kb], s[:responder_kb]) }
  puts format("  growth after the first %d: sender %+.1f MB, responder %+.1f MB; ledger left: %d",
              base[:round_trips], (last[:sender_kb] - base[:sender_kb]) / 1024.0,
              (last[:responder_kb] - base[:responder_kb]) / 1024.0, stats[:ledger_size])
  path = File.expand_path("../tmp/soak.json", __dir__)
  FileUtils.mkdir_p(File.dirname(path))
  File.write(path, JSON.pretty_generate(samples: samples, seconds: elapsed))
end
