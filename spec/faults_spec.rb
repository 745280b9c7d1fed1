# frozen_string_literal: true

require "spec_helper"
require "json"

# Faults caused for real: kill -9, a redis-server stopped and started again,
# FLUSHALL, a deleted stream, fork.
RSpec.describe "faults", timeout: 180 do
  let(:stream_name) { unique("faults") }

  def start_responder(group, delay = 0)
    start_fixture("responder.rb", stream_name, group, delay)
  end

  # Not under valgrind: the responder killed and the one taking over are child processes, which valgrind does not check.
  it "takes over the requests of a responder killed with -9, and every request gets exactly one reply", valgrind: false do
    responders = [start_responder("workers", 0.002), start_responder("workers", 0.002)]
    errors = Queue.new
    sender = connected_stream(stream_name, "sender", errors: errors, ledger: { entry_timeout: 10 })
    replies = Queue.new
    failures = Queue.new
    started = monotonic
    killed_at = nil
    senders = 16.times.map do |t|
      Thread.new do
        125.times do |i|
          sent = monotonic
          reply = sender.send_to_group(content: "#{t}-#{i}", to: "workers")
          replies << [reply.content[:echo], reply.content[:pid], sent, monotonic, reply.content[:redelivered]]
        rescue RedisIPC::Error => e
          failures << e
        end
      end
    end
    eventually(within: 60) { replies.size >= 600 }
    victim = responders.first
    Process.kill(:KILL, victim.pid)
    killed_at = monotonic
    # The requests the victim held when it died (frozen until the takeover,
    # dead_after later); its consumers also hold entries for other groups
    # whose acknowledgement was waiting to ride along.
    sleep 0.05
    # (on the shared stream, or on the group's requests lane: docs/wire.md, section 7)
    held = [stream_name, "#{stream_name}:workers:requests"].sum do |key|
      raw_redis.xpending(key, "workers", "-", "+", 10_000).count do |p|
        next false unless p["consumer"].include?("_#{victim.instance_id}_")

        _, fields = raw_redis.xrange(key, p["entry_id"], p["entry_id"]).first
        fields && fields["status"] == "pending" && fields["destination_group"] == "workers"
      end
    end
    eventually(within: 10) { replies.size >= 900 }
    start_responder("workers", 0.002) # and start it again
    senders.each(&:join)

    results = Array.new(replies.size) { replies.pop }
    expect(failures.size).to eq(0), -> { "#{failures.size} failed, first: #{failures.pop.inspect}" }
    expect(results.size).to eq(2000)
    expect(results.map(&:first).uniq.size).to eq(2000)
    # Requests that were with the victim when it died were answered by the survivor.
    stuck = results.select { |_, _, sent, done| sent < killed_at && done > killed_at }
    # The survivor's handler was told which requests it got from the dead
    # instance, and only those (sent around the kill: SIGKILL takes a moment).
    # (The victim may die holding no request: then nothing is redelivered.)
    redelivered = results.select(&:last)
    # A request the victim held unanswered waits for the takeover (dead_after,
    # 1.3 s): one answered that late by another instance was redelivered.
    # (Held entries whose replies the victim had already written are answered
    # again too, but their senders keep the first reply.)
    waited = stuck.select { |_, pid, _, done| pid != victim.pid && done > killed_at + 1.0 }
    expect(redelivered.size).to be > 0 if held.positive? && waited.any?
    expect(redelivered).to all(satisfy { |_, _, sent, done| sent < killed_at + 0.5 && done > killed_at })
    slowest = stuck.map { |_, _, _, done| done - killed_at }.max || 0
    puts "\n    takeover: #{stuck.size} requests in flight at the kill (#{held} held by the victim), the last answered #{slowest.round(3)}s after it " \
         "(run: #{(monotonic - started).round(2)}s)"
    expect(slowest).to be < 5
    expect(errors.size).to eq(0), -> { errors.pop.inspect }
    eventually { pending_of(raw_redis, stream_name, "workers").zero? }
    # The dead instance's consumers are gone from the group once they hold nothing.
    [stream_name, "#{stream_name}:workers:requests"].each do |key|
      consumers = raw_redis.xinfo(:consumers, key, "workers").map { |c| c["name"] }
      expect(consumers.size).to eq(2 * 3), key # two live responders: two dispatchers and an inbox each
    end
  end

  describe "Redis going away" do
    # A server of its own, so stopping it does not disturb the other specs.
    let(:server) { RedisServer.new.start }
    let(:url) { server.url }

    after { server.stop }

    def stream(group, errors)
      s = RedisIPC::Stream.new(stream_name, group)
      s.on_request { |e| fulfill_request(e, content: e.content) }
      s.on_error { |e| errors << e }
      s.connect(redis_options: { url: url }, ledger: { entry_timeout: 2 })
      (@streams ||= []) << s
      s
    end

    # Sends until a reply comes; returns the seconds it took.
    def time_to_serve(sender, to)
      started = monotonic
      loop do
        return monotonic - started if sender.send_to_group(content: "back?", to: to, timeout: 0.25).content == "back?"
      rescue RedisIPC::TimeoutError, RedisIPC::ConnectionError
        raise "not serving after 10s" if monotonic - started > 10
      end
    end

    it "fails sends promptly while Redis is down, reports the outage once, and serves again soon after it is back" do
      errors = Queue.new
      responder = stream("echo", errors)
      sender = stream("sender", errors)
      expect(sender.send_to_group(content: 1, to: "echo").content).to eq(1)

      server.stop(cleanup: false)
      3.times do
        started = monotonic
        expect { sender.send_to_group(content: 1, to: "echo", timeout: 5) }.to raise_error(RedisIPC::ConnectionError)
        expect(monotonic - started).to be < 2.5
      end
      sleep 1.5 # background threads retry meanwhile
      outage_errors = Array.new(errors.size) { errors.pop }
      expect(outage_errors).to all(be_a(RedisIPC::ConnectionError))
      expect(outage_errors.size).to be_between(1, 2) # once per stream

      server.start
      elapsed = time_to_serve(sender, "echo")
      puts "\n    redis restart: serving again #{elapsed.round(3)}s after redis-server was back"
      expect(elapsed).to be < 2
      expect(responder).to be_connected
      expect(Redis.new(url: url).lrange("#{stream_name}:echo:#{responder.instance_id}:consumers", 0, -1)).not_to be_empty
    end

    it "recovers from FLUSHALL and from the stream being deleted" do
      errors = Queue.new
      stream("echo", errors)
      sender = stream("sender", errors)
      redis = Redis.new(url: url)
      expect(sender.send_to_group(content: 1, to: "echo").content).to eq(1)
      redis.flushall
      elapsed = time_to_serve(sender, "echo")
      puts "\n    FLUSHALL: serving again after #{elapsed.round(3)}s"
      expect(elapsed).to be < 2
      redis.del(stream_name)
      elapsed = time_to_serve(sender, "echo")
      puts "    DEL stream: serving again after #{elapsed.round(3)}s"
      expect(elapsed).to be < 2
      expect(Array.new(errors.size) { errors.pop }.grep_v(RedisIPC::ConnectionError)).to eq([])
    end
  end

  describe "fork" do
    # Not under valgrind: the child's side runs silently under valgrind (a fork is not checked).
    it "lets the child connect a stream of its own; the parent's stream is not connected there", valgrind: false do
      connected_stream(stream_name, "echo")
      parent = connected_stream(stream_name, "parent")
      outcome = in_fork do
        result = {}
        begin
          parent.send_to_group(content: 1, to: "echo")
          result[:parent_stream] = "worked (wrong)"
        rescue RedisIPC::Error => e
          result[:parent_stream] = "#{e.class}: #{e.message}"
        end
        child = RedisIPC::Stream.new(stream_name, "child").on_request { |e| fulfill_request(e, content: e.content) }
        child.connect(redis_options: { url: redis_url })
        result[:child_stream] = child.send_to_group(content: "from child", to: "echo").content
        child.disconnect
        result
      end
      expect(outcome["parent_stream"]).to match(/RedisIPC::ConnectionError: .*not connected/)
      expect(outcome["child_stream"]).to eq("from child")
      # The parent's connections are untouched.
      20.times { |i| expect(parent.send_to_group(content: i, to: "echo").content).to eq(i) }
    end

    # Not under valgrind: the child's side runs silently under valgrind (a fork is not checked).
    it "survives a child that exits normally, running finalizers on the inherited stream", valgrind: false do
      # GCC 12's AddressSanitizer allocator takes no locks around fork, so a
      # child of this many-threaded process can deadlock in malloc during
      # Ruby's teardown; the TLS pass of bin/test covers this example.
      skip "fork of a threaded process under ASan (see comment)" if ENV["REDIS_IPC_SPEC_LIB"]
      connected_stream(stream_name, "echo")
      parent = connected_stream(stream_name, "parent")
      pid = fork { exit(0) }
      Process.wait(pid)
      expect($?.exitstatus).to eq(0)
      20.times { |i| expect(parent.send_to_group(content: i, to: "echo").content).to eq(i) }
    end
  end
end

RSpec.describe "a reply Redis refuses", timeout: 60 do
  let(:stream_name) { unique("oom") }
  let(:server) { RedisServer.new.start }

  after { server.stop }

  it "leaves its request pending (to be answered again), never acknowledged without a reply" do
    gate = Queue.new
    errors = Queue.new
    responder = RedisIPC::Stream.new(stream_name, "responder")
    responder.on_request do |e|
      gate.pop
      fulfill_request(e, content: "x" * 1000)
    end
    responder.on_error { |e| errors << e }
    responder.connect(redis_options: { url: server.url })
    sender = RedisIPC::Stream.new(stream_name, "sender").on_request { nil }
    sender.connect(redis_options: { url: server.url })
    redis = Redis.new(url: server.url)
    reply = sender.send_to_group_async(content: 1, to: "responder", timeout: 3)
    eventually { redis.xpending(stream_name, "responder")["size"] == 1 }
    redis.config(:set, "maxmemory", "1")
    gate << true
    error = Timeout.timeout(5) do
      loop do
        e = errors.pop
        break e if e.message.include?("reply") # (the heartbeat's refused ZADD is reported too)
      end
    end
    expect(error).to be_a(RedisIPC::CommandError)
    expect(error.message).to match(/refused the reply to request \h+: OOM/)
    redis.config(:set, "maxmemory", "0")
    expect(redis.xpending(stream_name, "responder")["size"]).to eq(1)
    expect { reply.value }.to raise_error(RedisIPC::TimeoutError)
  ensure
    [responder, sender].compact.each(&:disconnect)
    redis&.close
  end
end
