# frozen_string_literal: true

require "spec_helper"
require "json"

# The thread and connection budget of Engine v2: one service thread runs
# every stream's heartbeats and chores (ipc_service.c), a stream reads with
# one dispatcher until load calls for more, writes on its pool, and starts
# Ruby consumers on demand (one watcher thread per process). Counted in a
# child process of its own, so nothing else of the suite is in the count.
RSpec.describe "threads and connections of a process with many streams", timeout: 120 do
  # Native threads an idle stream has: its first dispatcher.
  NATIVE_PER_STREAM = 1

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
    # The waker's channels (ipc_waker.c): one per stream, all on one
    # subscriber connection of the child.
    channels = raw_redis.call("PUBSUB", "CHANNELS", "#{stream_name}:g*:wake")
    subscribers = raw_redis.call("CLIENT", "LIST").lines.grep(/ sub=#{count} /).size
    child.puts "disconnect"
    disconnected = JSON.parse(child.gets)
    channels_left = eventually { (left = raw_redis.call("PUBSUB", "CHANNELS", "#{stream_name}:g*:wake")).empty? && left }
    child.close_write
    child.read
    child.close
    @processes.delete(child)
    # Sockets the child keeps without streams are not Redis connections.
    own = connected["sockets"] - disconnected["sockets"]
    # The server notices closed sockets a moment later.
    gone = eventually { (n = redis_clients) <= clients - own && n }
    { connected: connected, disconnected: disconnected, redis_connections: clients - gone, sockets: own,
      channels: channels.size, channels_left: channels_left.size, subscribers: subscribers }
  end

  def ripc_threads(report)
    report["names"].select { |name, _| name.start_with?("ripc") }.sum { |_, n| n }
  end

  after { finish_processes }

  it "runs every stream's heartbeats, chores and wake subscription on one service thread" do
    one = measure(1)
    many = measure(25)
    puts "\n    1 stream: #{one[:connected]['threads']} threads (#{ripc_threads(one[:connected])} engine), " \
         "#{one[:redis_connections]} Redis connections"
    puts "    25 streams: #{many[:connected]['threads']} threads (#{ripc_threads(many[:connected])} engine), " \
         "#{many[:redis_connections]} Redis connections; engine threads by name #{many[:connected]['names'].select { |k, _| k.start_with?('ripc') }}"

    [[one, 1], [many, 25]].each do |m, count|
      names = m[:connected]["names"]
      expect(names["ripc service"]).to eq(1)
      expect(names.keys).not_to include("ripc heartbeat", "ripc housekeep", "ripc waker")
      expect(m[:channels]).to eq(count)
      expect(m[:channels_left]).to eq(0)
      # Every engine thread ends with the last stream, the service's too.
      expect(ripc_threads(m[:disconnected])).to eq(0)
      # The child's sockets that close with its streams are the Redis
      # connections the server saw leave.
      expect(m[:redis_connections]).to eq(m[:sockets])
    end
    expect(many[:subscribers]).to eq(1) # one connection subscribed to the 25 channels
    # Per stream: the first dispatcher's and one of the pool (writes, beats, chores); the subscriber is shared.
    expect(many[:redis_connections]).to be <= 2 * 25 + 3
    expect(ripc_threads(many[:connected]) - ripc_threads(one[:connected])).to be <= 24 * NATIVE_PER_STREAM
    # 25 streams that each served a request: at most 60 threads in all, Ruby's consumers included.
    expect(many[:connected]["threads"]).to be <= 60
  end

  it "subscribes the wake channels again after CLIENT KILL TYPE pubsub" do
    stream_name = unique("threads")
    streams = 2.times.map { |i| connected_stream(stream_name, "g#{i}") }
    channels = streams.map { |s| "#{stream_name}:#{s.group_name}:#{s.instance_id}:wake" }
    subscribed = -> { raw_redis.call("PUBSUB", "NUMSUB", *channels).each_slice(2).map(&:last) == [1, 1] }
    eventually(&subscribed)
    raw_redis.call("CLIENT", "KILL", "TYPE", "pubsub")
    eventually(&subscribed)
    expect(streams[0].send_to_group(content: "hi", to: "g1", timeout: 5).content).to eq("hi")
  end

  # Chores at their busiest (every stream sweeps its inbox every 20 ms while
  # its sender waits) must not hold back a beat: an instance whose beat is
  # older than dead_after would be taken over by a live peer.
  # Not under valgrind: volume (valgrind runs one thread at a time); other examples reach its C paths.
  it "beats every stream within dead_after while all of them send and serve", valgrind: false do
    stream_name = unique("threads")
    count = 25
    streams = count.times.map { |i| connected_stream(stream_name, "g#{i}") }
    stop = false
    sent = Array.new(count, 0)
    senders = streams.each_with_index.map do |s, i|
      Thread.new do
        until stop
          s.send_to_group(content: i, to: "g#{(i + 1) % count}", timeout: 5)
          sent[i] += 1
        end
      end
    end
    oldest = 0
    deadline = monotonic + 4
    while monotonic < deadline
      now_s, now_us = raw_redis.call("TIME").map(&:to_i)
      now_ms = now_s * 1000 + now_us / 1000
      streams.each do |s|
        score = raw_redis.zscore("#{stream_name}:#{s.group_name}:instances", s.instance_id)
        oldest = [oldest, now_ms - score.to_i].max
      end
      sleep 0.05
    end
    stop = true
    senders.each(&:join)
    puts "\n    #{count} streams sending and serving: #{sent.sum} round trips in 4 s, oldest beat seen #{oldest} ms old"
    expect(sent).to all(be_positive)
    expect(oldest).to be < 1300 # dead_after
    expect(streams.sum { |s| s.stats[:takeovers] }).to eq(0)
  end
end
