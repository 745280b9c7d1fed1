# frozen_string_literal: true

# The child of the README's realistic example: answers requests to "child",
# fulfilling three times in four and throwing a tantrum otherwise.
require "redis_ipc"

$stdout.sync = true
child_stream = RedisIPC::Stream.new(ENV.fetch("HOUSEHOLD_STREAM", "electric_household"), "child")
child_stream.on_error do |exception|
  puts "child: error #{exception.class}: #{exception.message}"
end

child_stream.on_request do |entry|
  puts "child: parent asks #{entry.content.inspect}"
  if rand > 0.25
    fulfill_request(entry, content: "Yes, creators")
  else
    reject_request(entry, content: "No! <Tantrum initiated>")
  end
end

child_stream.connect(
  redis_options: {},
  logger: nil,
  pool_size: 10,
  max_pool_size: nil,
  ledger: { entry_timeout: 5, cleanup_interval: 1 },
  consumer: { pool_size: 3, execution_interval: 0.01 },
  dispatcher: { pool_size: 2, execution_interval: 0.01 }
)
puts "child: ready"

# Serve until told to stop.
stop = Queue.new
%w[INT TERM].each { |sig| Signal.trap(sig) { stop << sig } }
stop.pop
child_stream.disconnect
puts "child: bye"
