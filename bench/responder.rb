# frozen_string_literal: true

# The other side of the benchmarks: answers every request at once.
# Usage: responder.rb URL STREAM GROUP
require "redis_ipc"

$stdout.sync = true
url, stream, group = ARGV
s = RedisIPC::Stream.new(stream, group)
s.on_request { |entry| fulfill_request(entry, content: entry.content) }
s.on_error { |e| warn "responder: #{e.class}: #{e.message}" }
signing = ENV["BENCH_SIGNING"] == "1" ? { signing: { keys: ["bench key"] } } : {}
s.connect(redis_options: { url: url }, consumer: { pool_size: Integer(ENV.fetch("CONSUMERS", "4")) }, **signing)
puts "ready"
$stdin.read
s.disconnect
