# frozen_string_literal: true

require "spec_helper"

# Redis answering a command with an error (NOPERM, OOM, READONLY) raises
# RedisIPC::CommandError with Redis's words, or reaches on_error once per
# cause. Every fault is caused for real: ACL users made with ACL SETUSER,
# maxmemory, REPLICAOF.
RSpec.describe "commands Redis refuses", timeout: 90 do
  # Faults that change the server itself get a server of their own.
  shared_context "a redis-server of its own" do
    let(:server) { RedisServer.new.start }
    let(:redis) { Redis.new(url: server.url) }

    after do
      (@streams || []).each(&:disconnect)
      @streams = nil
      redis.close
      server.stop
    end
  end

  let(:stream_name) { unique("refused") }

  # Once the cause is gone, a request to the echo group is answered again.
  def expect_serving_again(sender)
    eventually(within: 10) do
      sender.send_to_group(content: 3, to: "echo", timeout: 0.5).content == 3
    rescue RedisIPC::Error
      false
    end
  end

  describe "a Redis user without a permission the engine needs" do
    before { @users = [] }

    after do
      @users.each { |user| raw_redis.call("ACL", "DELUSER", user) }
    end

    # A user with every permission, then the rules given (e.g. "-xadd").
    def acl_user(*rules)
      name = unique("ripc_user")
      raw_redis.call("ACL", "SETUSER", name, "on", ">secret", "~*", "&*", "+@all", *rules)
      @users << name
      { url: redis_url, username: name, password: "secret" }
    end

    def stream_as(user, group)
      RedisIPC::Stream.new(stream_name, group).on_request { |e| fulfill_request(e, content: e.content) }.tap { |s| (@streams ||= []) << s }
                      .tap { |s| s.connect(redis_options: user) }
    end

    def expect_nothing_registered
      expect(raw_redis.keys("#{stream_name}*")).to eq([])
    end

    {
      "xadd" => /command XADD\b/, "xack" => /command XACK\b/, "zadd" => /command ZADD\b/,
      "publish" => /command PUBLISH\b/, "time" => /command TIME\b/,
      "xgroup|createconsumer" => /command XGROUP CREATECONSUMER\b/, "subscribe" => /command SUBSCRIBE\b/
    }.each do |command, named|
      it "makes connect raise CommandError naming #{command.upcase} when the user lacks it, leaving nothing behind" do
        stream = RedisIPC::Stream.new(stream_name, "workers").on_request { |e| fulfill_request(e, content: e.content) }
        expect { stream.connect(redis_options: acl_user("-#{command}")) }
          .to raise_error(RedisIPC::CommandError, named) { |e| expect(e.message).to include("NOPERM") }
        expect(stream).not_to be_connected
        expect_nothing_registered
      end
    end

    it "names every missing command at once, and refuses a user that may open a transaction but not discard it" do
      stream = RedisIPC::Stream.new(stream_name, "workers").on_request { nil }
      expect { stream.connect(redis_options: acl_user("-xadd", "-zadd", "-lpush")) }
        .to raise_error(RedisIPC::CommandError, /commands XADD, ZADD, LPUSH \(Redis says: NOPERM/)
      expect { stream.connect(redis_options: acl_user("-discard")) }
        .to raise_error(RedisIPC::CommandError, /MULTI but not DISCARD/)
      expect_nothing_registered
    end

    it "names the keys and the channel when those are what the user may not touch" do
      stream = RedisIPC::Stream.new(stream_name, "workers").on_request { |e| fulfill_request(e, content: e.content) }
      expect { stream.connect(redis_options: acl_user("resetkeys", "~elsewhere:*")) }
        .to raise_error(RedisIPC::CommandError, /key "#{stream_name}"/)
      expect { stream.connect(redis_options: acl_user("resetchannels")) }
        .to raise_error(RedisIPC::CommandError, /channel "#{stream_name}:workers:\h+:wake"/)
      expect_nothing_registered
    end

    it "finds a missing permission even when the user may not run MULTI (the probes then run for real, harmlessly)" do
      stream = RedisIPC::Stream.new(stream_name, "workers").on_request { |e| fulfill_request(e, content: e.content) }
      expect { stream.connect(redis_options: acl_user("-multi", "-xclaim")) }
        .to raise_error(RedisIPC::CommandError, /command XCLAIM\b/)
      expect_nothing_registered
      # With MULTI refused too, a user that has the rest connects and works.
      user = acl_user("-multi")
      stream_as(user, "echo")
      expect(stream_as(user, "sender").send_to_group(content: "hi", to: "echo").content).to eq("hi")
    end

    # Not under valgrind: waits for background retries; the read-only replica example reaches the same C paths.
    it "raises CommandError from send_to_group, and reports each background refusal once, when a permission is taken away later", valgrind: false do
      user = acl_user
      errors = Queue.new
      echo = stream_as(user, "echo")
      echo.on_error { |e| errors << e }
      sender = stream_as(user, "sender")
      expect(sender.send_to_group(content: 1, to: "echo").content).to eq(1)
      raw_redis.call("ACL", "SETUSER", user[:username], "-xadd", "-xreadgroup")
      expect { sender.send_to_group(content: 2, to: "echo", timeout: 10) }
        .to raise_error(RedisIPC::CommandError, /refused the request to group echo: NOPERM.*xadd/)
      # Reads already blocked in Redis go on; an entry ends them, and the next read is refused.
      raw_redis.xadd(stream_name, { id: "x", instance_id: "x", status: "pending", content: "1",
                                    source_group: "x", destination_group: "nobody" })
      sleep 1.5 # the dispatchers retry their reads every 0.25 s meanwhile
      reported = Array.new(errors.size) { errors.pop }
      expect(reported).not_to be_empty
      expect(reported).to all(be_a(RedisIPC::CommandError))
      expect(reported.map(&:message)).to all(match(/XREADGROUP.*NOPERM/))
      expect(reported.map(&:message).tally.values.max).to eq(1)
      raw_redis.call("ACL", "SETUSER", user[:username], "+xadd", "+xreadgroup")
      expect_serving_again(sender)
    end

    it "lets a user with every permission it needs connect and round-trip, in a couple of milliseconds more" do
      user = acl_user
      started = monotonic
      stream_as(user, "echo")
      puts "\n    connect with the permission check: #{((monotonic - started) * 1000).round(2)} ms"
      sender = stream_as(user, "sender")
      expect(sender.send_to_group(content: { n: 1 }, to: "echo").content).to eq({ n: 1 })
    end
  end

  describe "Redis out of memory (maxmemory, noeviction)" do
    include_context "a redis-server of its own"

    def stream(group, errors, &handler)
      s = RedisIPC::Stream.new(stream_name, group)
      s.on_request(&(handler || proc { |e| fulfill_request(e, content: e.content) }))
      s.on_error { |e| errors << e }
      s.connect(redis_options: { url: server.url }, ledger: { entry_timeout: 30 })
      (@streams ||= []) << s
      s
    end

    def out_of_memory
      redis.config(:set, "maxmemory-policy", "noeviction")
      redis.config(:set, "maxmemory", "1")
    end

    def memory_back
      redis.config(:set, "maxmemory", "0")
    end

    def drain(queue) = Array.new(queue.size) { queue.pop }

    it "raises CommandError with Redis's message from send_to_group at once, not after the timeout" do
      errors = Queue.new
      stream("echo", errors)
      sender = stream("sender", errors)
      out_of_memory
      started = monotonic
      expect { sender.send_to_group(content: 1, to: "echo", timeout: 20) }
        .to raise_error(RedisIPC::CommandError, /refused the request to group echo: OOM/)
      expect(monotonic - started).to be < 5
      expect { sender.send_to_group_async(content: 2, to: "echo", timeout: 20).value }
        .to raise_error(RedisIPC::CommandError, /OOM/)
      expect(sender.stats[:ledger_size]).to eq(0)
      memory_back
      expect(sender.send_to_group(content: 3, to: "echo").content).to eq(3)
    end

    # Not under valgrind: waits for the reclaim (10 s idle); faults_spec's refused reply reaches the same C paths.
    it "reports a refused reply to on_error once, keeps its request pending, and answers it after memory is back", valgrind: false do
      errors = Queue.new
      gate = Queue.new
      stream("responder", errors) do |e|
        gate.pop
        fulfill_request(e, content: "answer to #{e.content}")
      end
      sender = stream("sender", errors)
      reply = sender.send_to_group_async(content: 1, to: "responder", timeout: 40)
      eventually { pending_of(redis, stream_name, "responder") == 1 }
      out_of_memory
      gate << true
      # (The heartbeat's ZADD is refused too, and reported: skip that one.)
      refusal = Timeout.timeout(5) do
        loop do
          e = errors.pop
          break e if e.message.include?("reply")
        end
      end
      expect(refusal).to be_a(RedisIPC::CommandError)
      expect(refusal.message).to match(/refused the reply to request \h+: OOM/)
      expect(pending_of(redis, stream_name, "responder")).to eq(1) # never acknowledged without a reply
      memory_back
      gate << true # the request is handed out again once reclaimed (10 s idle)
      expect(reply.value.content).to eq("answer to 1")
      eventually { pending_of(redis, stream_name, "responder").zero? }
      expect(drain(errors).grep(RedisIPC::CommandError).map(&:message).grep(/reply/)).to eq([])
    end

    # Not under valgrind: waits for the reclaim (10 s idle); faults_spec's refused reply reaches the same C paths.
    it "tells of every refused reply: raised to the thread that wrote it, else to on_error once", valgrind: false do
      errors = Queue.new
      raised = Queue.new
      open = false
      s = RedisIPC::Stream.new(stream_name, "responder")
      s.on_request do |e|
        sleep 0.005 until open
        begin
          fulfill_request(e, content: e.content)
        rescue RedisIPC::CommandError => refused
          raised << refused
          raise
        end
      end
      s.on_error { |e| errors << e }
      s.connect(redis_options: { url: server.url }, consumer: { pool_size: 8 })
      (@streams ||= []) << s
      sender = stream("sender", errors)
      replies = Array.new(8) { |i| sender.send_to_group_async(content: i, to: "responder", timeout: 40) }
      eventually { pending_of(redis, stream_name, "responder") == 8 }
      out_of_memory
      open = true # eight answers at once: some are written by another thread's flush
      eventually { s.stats[:inflight_requests].zero? } # every answer written, and refused
      expect(pending_of(redis, stream_name, "responder")).to eq(8)
      memory_back
      expect(replies.map { |r| r.value.content }).to eq((0...8).to_a) # answered again after the reclaim
      raised_here = drain(raised)
      reported = drain(errors).grep(RedisIPC::CommandError).select { |e| e.message.include?("reply") }
      in_background = reported.reject { |e| raised_here.include?(e) }
      expect(reported.size - in_background.size).to eq(raised_here.size) # each raised one reached on_error too
      expect(in_background.size).to eq(raised_here.size < 8 ? 1 : 0)
      expect(in_background.map(&:message)).to all(match(/refused the reply to request \h+: OOM.*stays pending/))
      puts "\n    8 refused replies: #{raised_here.size} raised to their writer, the rest reported once to on_error"
    end

    # Not under valgrind: waits for refused heartbeats; other examples reach its C paths.
    it "reports a refusal met in a background retry loop once per cause, and again after it cleared and came back", valgrind: false do
      errors = Queue.new
      lonely = stream("lonely", errors)
      beats = "#{stream_name}:lonely:instances"
      2.times do
        out_of_memory
        sleep 2 # about three heartbeats (every 0.6 s) refused
        memory_back
        back = redis.time.then { |seconds, micros| seconds * 1000 + micros / 1000 }
        eventually { redis.zscore(beats, lonely.instance_id).to_i > back } # a beat accepted clears the cause
      end
      heartbeats = drain(errors).select { |e| e.message.include?("heartbeat") }
      expect(heartbeats.size).to eq(2)
      expect(heartbeats).to all(be_a(RedisIPC::CommandError))
      expect(heartbeats.map(&:message)).to all(match(/ZADD .*OOM/))
    end
  end

  describe "a read-only replica" do
    include_context "a redis-server of its own"

    # A master that never answers: the server stays a read-only replica.
    def read_only
      redis.call("REPLICAOF", "127.0.0.1", "1")
    end

    def stream(group, errors = nil)
      s = RedisIPC::Stream.new(stream_name, group).on_request { |e| fulfill_request(e, content: e.content) }
      s.on_error { |e| errors << e } if errors
      s.connect(redis_options: { url: server.url })
      (@streams ||= []) << s
      s
    end

    it "makes connect raise CommandError with READONLY" do
      read_only
      s = RedisIPC::Stream.new(stream_name, "echo").on_request { nil }
      expect { s.connect(redis_options: { url: server.url }) }.to raise_error(RedisIPC::CommandError, /READONLY/)
      expect(s).not_to be_connected
    end

    it "refuses sends with CommandError while the server is read-only, reports each background cause once, and serves again after" do
      errors = { echo: Queue.new, sender: Queue.new }
      stream("echo", errors[:echo])
      sender = stream("sender", errors[:sender])
      expect(sender.send_to_group(content: 1, to: "echo").content).to eq(1)
      read_only
      3.times do
        expect { sender.send_to_group(content: 2, to: "echo", timeout: 10) }
          .to raise_error(RedisIPC::CommandError, /READONLY/)
      end
      sleep 1.5 # dispatchers and heartbeats retry meanwhile
      errors.each_value do |queue|
        reported = Array.new(queue.size) { queue.pop }
        puts "\n    #{reported.map { |e| "#{e.class}: #{e.message}" }.join("\n    ")}" if ENV["VERBOSE"]
        expect(reported).not_to be_empty
        expect(reported).to all(be_a(RedisIPC::CommandError))
        expect(reported.map(&:message)).to all(include("READONLY"))
        expect(reported.map(&:message).tally.values.max).to eq(1) # once per cause, not once per retry
      end
      redis.call("REPLICAOF", "NO", "ONE")
      expect_serving_again(sender)
    end
  end
end
