# frozen_string_literal: true

# Many groups in one process, for the groups scenario of bench/run.rb: each
# group is a connected RedisIPC::Stream of its own with an echo handler,
# idle unless something is sent to it.
# Usage: groups.rb URL STREAM PREFIX FIRST COUNT
# Connects the groups PREFIX<FIRST> .. PREFIX<FIRST + COUNT - 1>, prints
# "ready", and disconnects them when its stdin closes.
require "redis_ipc"

$stdout.sync = true
url, stream, prefix, first, count = ARGV
signing = ENV["BENCH_SIGNING"] == "1" ? { signing: { keys: ["bench key"] } } : {}
streams = Array.new(Integer(count)) do |i|
  s = RedisIPC::Stream.new(stream, "#{prefix}#{Integer(first) + i}")
  s.on_request { |entry| fulfill_request(entry, content: entry.content) }
  s.on_error { |e| warn "groups.rb: #{e.class}: #{e.message}" }
  s.connect(redis_options: { url: url }, **signing)
end
puts "ready"
$stdin.read
streams.each(&:disconnect)
