# frozen_string_literal: true

# The parent of the README's realistic example: asks the child, and asks
# once more if the child refused. Exits 0 when the child fulfilled.
require "redis_ipc"

$stdout.sync = true
parent_stream = RedisIPC::Stream.new(ENV.fetch("HOUSEHOLD_STREAM", "electric_household"), "parent")
parent_stream.on_error do |exception|
  puts "parent: error #{exception.class}: #{exception.message}"
end

# This parent isn't very nice
parent_stream.on_request do |entry|
  reject_request(entry, content: "No, and because I said so")
end

parent_stream.connect

puts "parent: Please do this task for me, child"
response = parent_stream.send_to_group(content: "Please do this task for me, child", to: "child")
if response.fulfilled?
  puts "parent: Child said: #{response.content}"
  parent_stream.disconnect
  exit 0
end

puts "parent: the child refused (#{response.content}); Child, I will not ask again"
response = parent_stream.send_to_group(content: "Child, I will not ask again", to: "child")
puts "parent: Child said: #{response.content} (#{response.status})"
parent_stream.disconnect
exit(response.rejected? ? 1 : 0)
