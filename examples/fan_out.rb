# frozen_string_literal: true

# Async fan-out from one thread: many requests to one group in flight at
# once (send_to_group_async), and one question to several groups at once
# (send_to_groups / send_to_groups_async), one of which nobody serves.
#
#   REDIS_URL=redis://127.0.0.1:6379 ruby -Ilib examples/fan_out.rb
require "redis_ipc"

stream_name = "fan_out_example_#{Process.pid}"
# Three services in this process, each answering after its own delay.
services = { "weather" => 0.05, "news" => 0.2, "stocks" => 0.1 }.map do |group, delay|
  stream = RedisIPC::Stream.new(stream_name, group)
  stream.on_request do |entry|
    sleep delay
    fulfill_request(entry, content: "#{group} for #{entry.content[:city]}")
  end
  stream.connect(consumer: { pool_size: 10 }) # up to 10 handlers at once
end

client = RedisIPC::Stream.new(stream_name, "portal").on_request { |entry| reject_request(entry, content: "no") }
client.connect

# 1. Fan out to one group: 50 requests in flight, then their replies.
started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
pending = Array.new(50) { |i| client.send_to_group_async(content: { city: "city #{i}" }, to: "weather") }
answered = pending.count { |reply| reply.value.fulfilled? }
elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
puts "weather: #{answered}/50 answered in #{elapsed.round(2)}s"

# 2. One question to several groups; "sports" has no member.
gathering = client.send_to_groups_async(content: { city: "Lyon" }, to: %w[weather news stocks sports], timeout: 2)
puts "all in at once? #{gathering.wait(0) ? "yes" : "not yet"}"
gathering.value.each do |group, outcome|
  case outcome
  when RedisIPC::Stream::Entry then puts "#{group}: #{outcome.content}"
  when RedisIPC::NoRespondersError then puts "#{group}: nobody serves it"
  else puts "#{group}: #{outcome.class}"
  end
end

client.disconnect
services.each(&:disconnect)
