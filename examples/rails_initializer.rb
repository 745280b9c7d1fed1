# frozen_string_literal: true

# What config/initializers/redis_ipc.rb of a Rails app holds (README
# "Forking servers"), played without Rails: one stream per process,
# connected on first use, so that the same code works in a console, in a
# server that preloads the app and forks workers (Puma, Unicorn), and in
# each of those workers. With ActiveSupport loaded, requests are also
# published as ActiveSupport::Notifications events.
#
#   REDIS_URL=redis://127.0.0.1:6379 ruby -Ilib examples/rails_initializer.rb
require "redis_ipc"
begin
  require "active_support"
  require "active_support/notifications"
rescue LoadError
  nil # instrumentation is optional
end

STREAM_NAME = "rails_example_#{Process.pid}"

# --- config/initializers/redis_ipc.rb -----------------------------------
module IPC
  LOCK = Mutex.new
  STREAM = RedisIPC::Stream.new(STREAM_NAME, "web")
  STREAM.on_request { |entry| fulfill_request(entry, content: "web #{Process.pid} got #{entry.content}") }
  STREAM.on_error { |error| warn("[redis_ipc] #{error.class}: #{error.message}") }

  # The stream, connected in this process (again after a fork).
  def self.stream
    LOCK.synchronize { STREAM.connected? ? STREAM : STREAM.connect }
  end
end

if defined?(ActiveSupport::Notifications)
  RedisIPC.register(RedisIPC::Notifications)
  ActiveSupport::Notifications.subscribe("send.redis_ipc") do |event|
    puts "  (event send.redis_ipc to #{event.payload[:group]}: #{event.duration.round(1)} ms)"
  end
end
# -------------------------------------------------------------------------

# Another service of the system, here in the same process.
billing = RedisIPC::Stream.new(STREAM_NAME, "billing")
billing.on_request { |entry| fulfill_request(entry, content: "invoice for order #{entry.content[:order]}") }
billing.connect

# The app boots (in a preloading server: in the master).
puts "master: #{IPC.stream.send_to_group(content: { order: 1 }, to: "billing").content}"
master_instance = IPC.stream.instance_id

$stdout.flush
workers = Array.new(2) do |n|
  fork do
    # A worker: the master's stream is not connected here; first use connects it.
    before = IPC::STREAM.connected?
    reply = IPC.stream.send_to_group(content: { order: 10 + n }, to: "billing").content
    own = IPC.stream.instance_id != master_instance
    puts "worker #{n + 1}: connected before first use: #{before}; own instance: #{own}; #{reply}"
    $stdout.flush
    IPC::STREAM.disconnect
  end
end
workers_ok = workers.map { |pid| Process.wait2(pid).last.success? }.all?
puts "master still serving: #{IPC.stream.send_to_group(content: "ping", to: "web").content.start_with?("web #{Process.pid}")}"

IPC::STREAM.disconnect
billing.disconnect
exit(workers_ok ? 0 : 1)
