# frozen_string_literal: true

# A connected process that does nothing, for measuring the idle cost.
# Usage: idle.rb URL STREAM GROUP
require "redis_ipc"

$stdout.sync = true
url, stream, group = ARGV
s = RedisIPC::Stream.new(stream, group).on_request { |e| fulfill_request(e, content: e.content) }
s.connect(redis_options: { url: url })
puts "ready"
$stdin.read
s.disconnect
