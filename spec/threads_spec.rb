# frozen_string_literal: true

require "spec_helper"
require "json"

# The engine's service thread (ipc_service.c) runs every stream's heartbeats
# and chores: a process's threads and Redis connections must not grow by a
# heartbeat and a housekeeper per stream. Counted in a child process of its
# own, so nothing else of the suite is in the count.
RSpec.describe "threads and connections of a process with many streams", timeout: 120 do
  # Native threads each stream still has: 2 dispatchers, the writer, the waker.
  NATIVE_PER_STREAM = 4
  # Ruby threads each stream has: 3 consumers, the error reporter.
  RUBY_PER_STREAM = 4

  def redis_clients
    raw_redis.call("CLIENT", "LIST").lines.size
  end

  # Starts the child with `count` streams, has each serve one request, and
  # returns what it reports while connected and after disconnecting, with the
  # Redis connections it held as the server counts them.
  def measure(count)
    stream_name = unique("threads")
    child = start_fixture("many_streams.rb", stream_name, count)
    sender = connected_stream(stream_name, "sender")
    count.times do |i|
      expect(sender.send_to_group(content: "hi", to: "g#{i}", timeout: 5).content).to eq("g#{i}")
    end
    child.puts "report"
    connected = JSON.parse(child.gets)
    clients = redis_clients
    child.puts "disconnect"
    disconnected = JSON.parse(child.gets)
    child.close_write
    child.read
    child.close
    @processes.delete(child)
    # Sockets the child keeps without streams are not Redis connections.
    own = connected["sockets"] - disconnected["sockets"]
    # The server notices closed sockets a moment later.
    gone = eventually { (n = redis_clients) <= clients - own && n }
    { connected: connected, disconnected: disconnected, redis_connections: clients - gone, sockets: own }
  end

  def ripc_threads(report)
    report["names"].select { |name, _| name.start_with?("ripc") }.sum { |_, n| n }
  end

  after do
    (@processes || []).each do |io|
      io.close_write unless io.closed?
      io.read unless io.closed?
      io.close unless io.closed?
    end
  end

  it "runs every stream's heartbeats and chores on one service thread" do
    one = measure(1)
    many = measure(25)
    puts "\n    1 stream: #{one[:connected]['threads']} threads (#{ripc_threads(one[:connected])} engine), " \
         "#{one[:redis_connections]} Redis connections"
    puts "    25 streams: #{many[:connected]['threads']} threads (#{ripc_threads(many[:connected])} engine), " \
         "#{many[:redis_connections]} Redis connections; engine threads by name #{many[:connected]['names'].select { |k, _| k.start_with?('ripc') }}"

    [one, many].each do |m|
      names = m[:connected]["names"]
      expect(names["ripc service"]).to eq(1)
      expect(names.keys).not_to include("ripc heartbeat", "ripc housekeep")
      # Every engine thread ends with the last stream, the service's too.
      expect(ripc_threads(m[:disconnected])).to eq(0)
      # The child's sockets that close with its streams are the Redis
      # connections the server saw leave.
      expect(m[:redis_connections]).to eq(m[:sockets])
    end
    expect(ripc_threads(many[:connected]) - ripc_threads(one[:connected])).to be <= 24 * NATIVE_PER_STREAM
    expect(many[:connected]["threads"] - one[:connected]["threads"]).to be <= 24 * (NATIVE_PER_STREAM + RUBY_PER_STREAM)
  end
end
