# frozen_string_literal: true

require "spec_helper"
require "tempfile"

# Bounded prefetch: an instance takes at most as many requests as its
# consumers handle plus 8 queued for each (ipc_stream.c); the rest wait in
# Redis, where other instances of the group can take them.
RSpec.describe "bounded prefetch", timeout: 180 do
  let(:stream_name) { unique("prefetch") }

  after do
    raw_redis.del(stream_name)
  end

  # Writes `count` requests to `group` as raw entries, as a crowd of senders
  # would, through redis-cli --pipe (fast, whatever runs this spec).
  def flood(group, count, content: '"x"')
    file = Tempfile.new("flood")
    fields = ->(i) { ["XADD", stream_name, "*", "id", format("%021x", i), "instance_id", "f100d0", "status", "pending",
                      "content", content, "source_group", "flooder", "destination_group", group] }
    count.times do |i|
      args = fields.call(i)
      file.write("*#{args.size}\r\n", *args.map { |a| "$#{a.bytesize}\r\n#{a}\r\n" })
    end
    file.close
    # The flood is loaded in plain text, on the suite server's own socket even when the suite talks TLS.
    socket = $redis_server ? $redis_server.socket : redis_url.delete_prefix("unix://")
    out = IO.popen({ "LD_PRELOAD" => nil }, ["redis-cli", "-s", socket, "--pipe"], in: file.path, err: [:child, :out], &:read)
    raise "redis-cli --pipe failed: #{out}" unless $?.success?
  ensure
    file&.unlink
  end

  def rss_kb(pid)
    File.read("/proc/#{pid}/status")[/VmRSS:\s+(\d+)/, 1].to_i
  end

  # Not under valgrind: the slow instance is a child process, which valgrind does not check.
  it "keeps a slow instance's memory flat under a flood of 100,000 requests", valgrind: false do
    slow = start_fixture("responder.rb", stream_name, "workers", 0.05)
    sleep 0.5
    before = rss_kb(slow.pid)
    flood("workers", 100_000)
    sleep 3
    after = rss_kb(slow.pid)
    puts "\n    flood of 100,000: slow responder RSS #{before / 1024} MB -> #{after / 1024} MB"
    expect(after - before).to be < 50 * 1024
    # It took only what its three consumers and the margin hold: the rest
    # is still new to the group or parked on its consumers, in Redis.
    pending = raw_redis.xpending(stream_name, "workers")["size"]
    info = raw_redis.xinfo(:groups, stream_name).find { |g| g["name"] == "workers" }
    expect(pending + info.fetch("lag", 100_000 - pending).to_i).to be > 99_000
  end

  # Not under valgrind: the instances holding requests are child processes, which valgrind does not check.
  it "holds no more unanswered requests than its consumers plus 8 each, and leaves the rest to other instances", valgrind: false do
    release = Queue.new
    slow = connected_stream(stream_name, "workers", consumer: { pool_size: 2 }) do |entry|
      release.pop
      fulfill_request(entry, content: "slow")
    end
    flood("workers", 400)
    peaks = []
    20.times do
      peaks << slow.stats[:inflight_requests]
      sleep 0.02
    end
    # Two consumers busy, plus 8 queued for each; a read may leave one more
    # parked on its consumer until there is room.
    expect(peaks.max).to be <= 18
    expect(slow.stats[:queued_requests]).to be <= 16
    # A fast instance of the same group takes what the slow one leaves.
    fast_count = 0
    lock = Mutex.new
    connected_stream(stream_name, "workers") do |entry|
      lock.synchronize { fast_count += 1 }
      fulfill_request(entry, content: "fast")
    end
    eventually(within: 20) { lock.synchronize { fast_count } >= 380 }
    400.times { release << true }
    eventually(within: 20) { raw_redis.xpending(stream_name, "workers")["size"].zero? }
    expect(fast_count).to be >= 380
  end

  it "still reads replies for a handler that sends while every consumer is busy" do
    connected_stream(stream_name, "echo") { |entry| fulfill_request(entry, content: entry.content) }
    nested = connected_stream(stream_name, "nested", consumer: { pool_size: 1 }) do |entry|
      reply = send_to_group(content: entry.content, to: "echo", timeout: 5)
      fulfill_request(entry, content: reply.content)
    end
    sender = connected_stream(stream_name, "sender")
    replies = Array.new(8) { |i| sender.send_to_group_async(content: i, to: "nested", timeout: 20) }
    expect(replies.map { |r| r.value.content }).to eq((0...8).to_a)
    expect(nested.stats[:inflight_requests]).to be <= 9
  end

  it "never flags a request redelivered for having waited parked past the 10 s reclaim" do
    # One consumer with room for 9 (itself and 8 queued): of 12 requests, 3
    # wait parked in Redis on this instance's dispatcher while the handler
    # works 16 s, past reclaim_idle. Each runs once, and none is told
    # it may have run before.
    seen = Queue.new
    responder = connected_stream(stream_name, "workers", consumer: { pool_size: 1 }) do |entry|
      seen << [entry.content, entry.redelivered?]
      sleep 16 if entry.content.zero?
      fulfill_request(entry, content: entry.content)
    end
    sender = connected_stream(stream_name, "sender", ledger: { entry_timeout: 40 })
    replies = Array.new(12) { |i| sender.send_to_group_async(content: i, to: "workers") }
    expect(replies.map { |r| r.value.content }).to eq((0...12).to_a)
    handled = Array.new(seen.size) { seen.pop }
    expect(handled.map(&:first).sort).to eq((0...12).to_a)
    expect(handled.select(&:last)).to eq([])
    expect(responder).to be_connected
  end
end
