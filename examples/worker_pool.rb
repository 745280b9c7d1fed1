# frozen_string_literal: true

# A worker pool: several processes connect with the same group name, and the
# requests sent to the group are spread across them; each reply reaches the
# process that waits for it. The workers are forked before this process
# connects anything, each connects its own instance, and they stop when the
# pipe they watch is closed.
#
#   REDIS_URL=redis://127.0.0.1:6379 ruby -Ilib examples/worker_pool.rb
require "redis_ipc"

STREAM = "pool_example_#{Process.pid}"
WORKERS = 3
JOBS = 60

def work(ready, stop)
  stream = RedisIPC::Stream.new(STREAM, "squares")
  stream.on_request do |entry|
    sleep 0.005 # some work
    fulfill_request(entry, content: { square: entry.content**2, pid: Process.pid })
  end
  stream.on_error { |error| warn("worker #{Process.pid}: #{error.message}") }
  stream.connect
  ready.puts(Process.pid)
  stop.read # returns once the parent closes its end
  stream.disconnect
end

ready_reader, ready_writer = IO.pipe
stop_reader, stop_writer = IO.pipe
pids = Array.new(WORKERS) do
  fork do
    ready_reader.close
    stop_writer.close
    work(ready_writer, stop_reader)
  end
end
[ready_writer, stop_reader].each(&:close)
WORKERS.times { ready_reader.gets }
puts "#{WORKERS} workers ready"

client = RedisIPC::Stream.new(STREAM, "client").on_request { |entry| reject_request(entry, content: "no") }
client.connect
# Every job in flight at once, from one thread.
pending = Array.new(JOBS) { |n| client.send_to_group_async(content: n, to: "squares", timeout: 10) }
replies = pending.map(&:value)
wrong = replies.each_with_index.count { |reply, n| reply.content[:square] != n * n }
by_worker = replies.group_by { |reply| reply.content[:pid] }.transform_values(&:size)
puts "#{JOBS} jobs answered, #{wrong} wrong, by #{by_worker.size} worker(s): " \
     "#{by_worker.sort.map { |pid, n| "#{pid}=#{n}" }.join(" ")}"
client.disconnect

stop_writer.close
pids.each { |pid| Process.wait(pid) }
puts "workers stopped: #{pids.size}"
exit(wrong.zero? ? 0 : 1)
