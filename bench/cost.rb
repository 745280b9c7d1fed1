# frozen_string_literal: true

# Where the CPU of a round trip goes: a sender and a responder (each its own
# process, as in rake bench) keep `in_flight` requests outstanding, and this
# prints the CPU microseconds each process (sender, responder, redis-server)
# spends per round trip, and the Redis commands per round trip by name.
# Round trips/s alone hide which side a change helped; on 2 cores the three
# processes share the machine, so each one's CPU per round trip is what adds
# up to the rate. Usage (after `rake compile`):
#   ruby -Ilib bench/cost.rb [threads|async] [IN_FLIGHT] [SECONDS]
require_relative "support"
require "redis_ipc"

mode = ARGV.fetch(0, "async")
in_flight = Integer(ARGV.fetch(1, "64"))
seconds = Float(ARGV.fetch(2, "5"))
abort "usage: bench/cost.rb [threads|async] [IN_FLIGHT] [SECONDS]" unless %w[threads async].include?(mode)
stream = "cost_#{Process.pid}"

Bench.with_redis do |url, port|
  probe = Bench::Probe.new(port)
  redis_pid = Integer(probe.call("INFO", "server")[/process_id:(\d+)/, 1])
  responder = Bench.spawn_ruby("responder.rb", url, stream, "responder")
  responder.gets
  sender = RedisIPC::Stream.new(stream, "sender").on_request { nil }
  sender.connect(redis_options: { url: url }, ledger: { entry_timeout: 30 })
  200.times { sender.send_to_group(content: 1, to: "responder") } # warm up

  pids = { sender: Process.pid, responder: responder.pid, redis: redis_pid }
  cpu_before = commands_before = nil
  done, elapsed = Bench.keep_in_flight(sender, mode, in_flight, seconds) do
    cpu_before = pids.transform_values { |pid| Bench.cpu_seconds(pid) }
    commands_before = probe.per_command
  end
  cpu = pids.to_h { |name, pid| [name, (Bench.cpu_seconds(pid) - cpu_before[name]) / done * 1e6] }
  commands = probe.per_command.to_h { |name, calls| [name, (calls - commands_before.fetch(name, 0)).to_f / done] }
                  .reject { |name, per| per < 0.005 || %w[info client|list].include?(name) }

  puts format("%s x%d: %d round trips/s", mode, in_flight, done / elapsed)
  puts "CPU µs per round trip: " + cpu.map { |name, us| format("%s %.1f", name, us) }.join(", ") +
       format(" (total %.1f)", cpu.values.sum)
  puts "Redis commands per round trip: " + commands.sort_by { |_, per| -per }.map { |n, per| format("%s %.3f", n, per) }.join(", ")
  sender.disconnect
  responder.close_write
  responder.read
  responder.close
end
