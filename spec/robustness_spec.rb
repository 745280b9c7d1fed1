# frozen_string_literal: true

require "spec_helper"
require "socket"

# Handlers that raise anything, connects cut short, options past their
# bounds, and content too large for one end: each caused for real.
RSpec.describe "robustness", timeout: 180 do
  let(:stream_name) { unique("robust") }

  # Recursion with no bottom: a real SystemStackError.
  module Bottomless
    def self.fall(depth)
      fall(depth + 1) + 1
    end
  end

  # Raised into a connecting thread from outside.
  class ConnectCut < Exception; end # rubocop:disable Lint/InheritException

  describe "a request handler that raises anything" do
    {
      "recurses without end (SystemStackError)" => [-> { Bottomless.fall(0) }, SystemStackError, /\ASystemStackError: stack level too deep/],
      "raises NoMemoryError" => [-> { raise NoMemoryError, "pretend" }, NoMemoryError, /\ANoMemoryError: pretend\z/],
      "raises a plain Exception" => [-> { raise Exception, "plain" }, Exception, /\AException: plain\z/], # rubocop:disable Lint/RaiseException
      "raises Interrupt" => [-> { raise Interrupt, "pressed" }, Interrupt, /\AInterrupt: pressed\z/]
    }.each do |what, (failure, klass, reason)|
      it "that #{what}: rejects at once, reports it and the same consumer keeps serving" do
        errors = Queue.new
        consumers = Queue.new
        child = connected_stream(stream_name, "child", errors: errors, consumer: { pool_size: 1 }) do |e|
          consumers << Thread.current
          failure.call if e.content == "fail"
          fulfill_request(e, content: "fine")
        end
        parent = connected_stream(stream_name, "parent")

        started = monotonic
        reply = parent.send_to_group(content: "fail", to: "child", timeout: 10)
        expect(monotonic - started).to be < 5
        expect(reply).to be_rejected
        expect(reply.content).to match(reason)
        error = Timeout.timeout(5) { errors.pop }
        expect(error).to be_a(klass)

        expect(parent.send_to_group(content: "again", to: "child", timeout: 5).content).to eq("fine")
        expect(consumers.pop).to be(consumers.pop) # one consumer served both
        expect(child.disconnect).to be(child)
        expect(child.disconnect).to be(child)
        expect(child).not_to be_connected
      end
    end

    it "rejects even when the exception's text is not UTF-8 or does not fit max_content_bytes" do
      errors = Queue.new
      connected_stream(stream_name, "child", errors: errors, max_content_bytes: 300) do |e|
        raise e.content == "long" ? "x" * 5000 : "bad \xff bytes".b
      end
      parent = connected_stream(stream_name, "parent")
      long = parent.send_to_group(content: "long", to: "child", timeout: 10)
      expect(long).to be_rejected
      expect(long.content).to start_with("RuntimeError: xxx").and end_with("...")
      expect(JSON.generate(long.content).bytesize).to be <= 300
      binary = parent.send_to_group(content: "binary", to: "child", timeout: 10)
      expect(binary.content).to eq("RuntimeError: bad \uFFFD bytes")
      expect(Timeout.timeout(5) { [errors.pop, errors.pop] }).to all(be_a(RuntimeError))
    end

    it "survives an exception thrown into a consumer from outside, and disconnect does not re-raise it" do
      errors = Queue.new
      child = connected_stream(stream_name, "child", errors: errors, consumer: { pool_size: 2 })
      parent = connected_stream(stream_name, "parent")
      expect(parent.send_to_group(content: 0, to: "child", timeout: 5).content).to eq(0) # consumers start on demand
      consumer = Thread.list.find { |t| t.name == "redis_ipc child consumer 1" }
      consumer.raise(Exception, "from outside") # rubocop:disable Lint/RaiseException
      expect(Timeout.timeout(5) { errors.pop }.message).to eq("from outside")
      expect(parent.send_to_group(content: 1, to: "child", timeout: 5).content).to eq(1)
      expect { 2.times { child.disconnect } }.not_to raise_error
    end

    it "still lets disconnect kill a handler that does not finish" do
      started = Queue.new
      child = connected_stream(stream_name, "child", ledger: { entry_timeout: 0.3 }) do |_e|
        started << true
        sleep
      end
      parent = connected_stream(stream_name, "parent")
      Thread.new { parent.send_to_group(content: 1, to: "child", timeout: 0.5) rescue nil } # rubocop:disable Style/RescueModifier
      started.pop
      before = monotonic
      child.disconnect
      expect(monotonic - before).to be < 3
      eventually { Thread.list.map(&:name).grep(/redis_ipc child/).empty? }
    end
  end

  describe "an interrupted connect" do
    def options
      { redis_options: { url: redis_url } }
    end

    # Native engine threads of this process ("ripc ..." names).
    def engine_threads
      Dir["/proc/self/task/*/comm"].count do |comm|
        File.read(comm).start_with?("ripc")
      rescue SystemCallError
        false
      end
    end

    # Anything of group `group` left in Redis: consumer lists, heartbeats,
    # consumers in the group.
    def leftovers(group)
      lists = raw_redis.keys("#{stream_name}:#{group}:*:consumers")
      beats = raw_redis.zrange("#{stream_name}:#{group}:instances", 0, -1)
      consumers = begin
        raw_redis.xinfo(:consumers, stream_name, group).map { |c| c["name"] }
      rescue Redis::CommandError # no stream or group yet
        []
      end
      lists + beats + consumers
    end

    # One connect, cut at a random moment up to `within` seconds by `how`.
    def cut_connect(stream, how, within)
      case how
      when :timeout
        Timeout.timeout(rand * within) { stream.connect(**options) }
      when :raise
        target = Thread.current
        cutter = Thread.new do
          sleep(rand * within)
          target.raise(ConnectCut, "cut")
        end
        begin
          stream.connect(**options)
        ensure
          cutter.kill.join
        end
      when :kill
        connector = Thread.new { stream.connect(**options) }
        sleep(rand * within)
        connector.kill.join
      end
      :finished
    rescue Timeout::Error, ConnectCut
      :interrupted
    end

    it "leaves nothing connected, registered or running, and the next connect works" do
      s = RedisIPC::Stream.new(stream_name, "flaky").on_request { |e| fulfill_request(e, content: e.content) }
      ruby_threads = Thread.list.size
      native_threads = engine_threads
      # Cut within about one and a half connects, whatever this machine (or valgrind) makes of one.
      started = monotonic
      s.connect(**options)
      within = (monotonic - started) * 1.5
      s.disconnect

      cut_short = 0
      36.times do |i|
        outcome = cut_connect(s, %i[timeout raise kill][i % 3], within)
        if s.connected?
          # The interrupt came after connect had finished: the stream holds
          # a working engine, which disconnect takes down.
          expect(s.send_to_group(content: i, to: "flaky", timeout: 5).content).to eq(i)
          s.disconnect
        elsif outcome == :interrupted || i % 3 == 2
          cut_short += 1
        end
        eventually(within: 3) do
          leftovers("flaky").empty? && engine_threads == native_threads && Thread.list.size == ruby_threads
        end
      end
      expect(cut_short).to be > 0

      s.connect(**options)
      expect(s.send_to_group(content: "whole", to: "flaky", timeout: 5).content).to eq("whole")
      s.disconnect
      expect(leftovers("flaky")).to be_empty
      eventually(within: 3) { engine_threads == native_threads && Thread.list.size == ruby_threads }
    end

    it "still fails within its timeouts when Redis accepts but never answers" do
      mute = TCPServer.new("127.0.0.1", 0) # listens, never reads nor answers
      s = RedisIPC::Stream.new(stream_name, "g").on_request { nil }
      started = monotonic
      redis = { host: "127.0.0.1", port: mute.addr[1], connect_timeout: 0.3, timeout: 0.3 }
      expect { Timeout.timeout(0.05) { s.connect(redis_options: redis) } }
        .to raise_error { |e| expect([Timeout::Error, RedisIPC::ConnectionError]).to include(e.class) }
      expect(monotonic - started).to be < 5
      expect(s).not_to be_connected
      expect { s.connect(redis_options: { host: "127.0.0.1", port: 1, connect_timeout: 0.3 }) }
        .to raise_error(RedisIPC::ConnectionError)
      expect(monotonic - started).to be < 5
    ensure
      mute&.close
    end
  end

  describe "option bounds" do
    let(:s) { RedisIPC::Stream.new(stream_name, "g").on_request { nil } }

    {
      { pool_size: 1025 } => /pool_size/,
      { max_pool_size: 1025 } => /max_pool_size/,
      { consumer: { pool_size: 257 } } => /consumer.pool_size/,
      { dispatcher: { pool_size: 17 } } => /dispatcher.pool_size/,
      { dispatcher: { pool_size: 10_000 } } => /dispatcher.pool_size/,
      { ledger: { entry_timeout: 86_401 } } => /entry_timeout/,
      { ledger: { entry_timeout: Float::INFINITY } } => /entry_timeout/,
      { ledger: { entry_timeout: Float::NAN } } => /entry_timeout/,
      { ledger: { entry_timeout: Complex(1, 0) } } => /entry_timeout/,
      { ledger: { cleanup_interval: 3601 } } => /cleanup_interval/,
      { consumer: { execution_interval: 61 } } => /execution_interval/,
      { dispatcher: { execution_interval: 61 } } => /execution_interval/,
      { takeover: { heartbeat_interval: 61, dead_after: 120 } } => /heartbeat_interval/,
      { takeover: { dead_after: 3601 } } => /dead_after/,
      { max_content_bytes: 512 * 1024 * 1024 + 1 } => /max_content_bytes/,
      { retention: 30 * 86_400 + 1 } => /retention/,
      { redis_options: { timeout: 61 } } => /timeout/,
      { redis_options: { connect_timeout: 61 } } => /connect_timeout/,
      { redis_options: { port: 65_536 } } => /port/,
      { redis_options: { db: 65_536 } } => /db/
    }.each do |options, message|
      it "refuses #{options.inspect}" do
        redis = { url: redis_url }.merge(options.fetch(:redis_options, {}))
        expect { s.connect(**options, redis_options: redis) }.to raise_error(ArgumentError, message)
        expect(s).not_to be_connected
      end
    end

    it "takes every maximum" do
      maxima = RedisIPC::ConnectOptions.new(
        pool_size: 1024, max_pool_size: 1024, consumer: { pool_size: 256, execution_interval: 60 },
        dispatcher: { pool_size: 16, execution_interval: 60 }, ledger: { entry_timeout: 86_400, cleanup_interval: 3600 },
        takeover: { heartbeat_interval: 60, dead_after: 3600 }, max_content_bytes: 512 * 1024 * 1024, retention: 30 * 86_400,
        redis_options: { port: 65_535, db: 65_535, timeout: 60, connect_timeout: 60 }
      )
      expect(maxima.engine_options).to include(dispatcher_count: 16, pool_size: 1024 - 16, entry_timeout: 86_400.0)
    end

    it "refuses a send_to_group timeout over a day" do
      parent = connected_stream(stream_name, "parent")
      expect { parent.send_to_group(content: 1, to: "x", timeout: 86_401) }.to raise_error(ArgumentError, /timeout/)
      expect { parent.send_to_group(content: 1, to: "x", timeout: Float::INFINITY) }.to raise_error(ArgumentError, /timeout/)
    end

    it "has the engine refuse out-of-range options itself (C programs call it directly)" do
      {
        { dispatcher_count: 10_000 } => /dispatcher_count/, { dispatcher_count: 0 } => /dispatcher_count/,
        { pool_size: 4096 } => /pool_size/, { entry_timeout: Float::NAN } => /entry_timeout/,
        { entry_timeout: 1e300 } => /entry_timeout/, { block_timeout: -1.0 } => /block_timeout/,
        { reclaim_idle: 1e9 } => /reclaim_idle/, { retention: -1.0 } => /retention/,
        { heartbeat_interval: 2.0, dead_after: 1.0 } => /dead_after/, { port: 0 } => /port/, { db: 70_000 } => /db/,
        { timeout: 100.0 } => /timeout/, { max_content_bytes: 0 } => /max_content_bytes/
      }.each do |options, message|
        expect { RedisIPC::Engine.new(stream_name, "g", { path: nil }.merge(options)) }
          .to raise_error(ArgumentError, message), options.inspect
      end
    end

    it "serves with the largest dispatcher count" do
      child = connected_stream(stream_name, "child", dispatcher: { pool_size: 16 })
      parent = connected_stream(stream_name, "parent", dispatcher: { pool_size: 16 })
      expect(parent.send_to_group(content: { n: 16 }, to: "child", timeout: 5).content).to eq({ n: 16 })
      dispatchers = raw_redis.xinfo(:consumers, stream_name, "child").map { |c| c["name"] }.grep(/\Adispatcher_#{child.instance_id}_/)
      expect(dispatchers.size).to eq(16)
    end
  end

  describe "content sizes at both ends" do
    it "refuses to answer with content over max_content_bytes, either way, and the request can still be answered" do
      outcomes = Queue.new
      connected_stream(stream_name, "child", max_content_bytes: 100) do |e|
        [-> { fulfill_request(e, content: "y" * 200) }, -> { reject_request(e, content: "n" * 200) }].each do |answer|
          answer.call
        rescue ArgumentError => err
          outcomes << err
        end
        reject_request(e, content: "small")
      end
      reply = connected_stream(stream_name, "parent").send_to_group(content: 1, to: "child", timeout: 5)
      expect(reply.content).to eq("small")
      expect([outcomes.pop, outcomes.pop].map(&:message)).to all(match(/over max_content_bytes \(100\)/))
    end

    it "rejects at once a request larger than the responder's max_content_bytes, with the reason" do
      errors = Queue.new
      handled = Queue.new
      small = connected_stream(stream_name, "small", errors: errors, max_content_bytes: 1000) do |e|
        handled << e.content
        fulfill_request(e, content: "handled")
      end
      big = connected_stream(stream_name, "big", max_content_bytes: 1_000_000)

      started = monotonic
      reply = big.send_to_group(content: "x" * 5000, to: "small", timeout: 10)
      expect(monotonic - started).to be < 5
      expect(reply).to be_rejected
      expect(reply.content).to eq("request content is 5002 bytes, over max_content_bytes (1000) of group small")
      error = Timeout.timeout(5) { errors.pop }
      expect(error).to be_a(RedisIPC::MalformedEntryError)
      expect(error.message).to include("5002 bytes", "max_content_bytes (1000)", "from group big")
      redis_id = error.message[/request (\d+-\d+)/, 1]
      eventually { raw_redis.xrange(stream_name, redis_id, redis_id).empty? } # acknowledged and deleted
      eventually { raw_redis.xpending(stream_name, "small")["size"].zero? }
      expect(handled).to be_empty
      eventually { small.stats[:inflight_requests].zero? }

      expect(big.send_to_group(content: "x" * 10, to: "small", timeout: 5).content).to eq("handled")
    end

    it "answers an oversized request of a 1.x peer by the wire contract, and leaves oversized garbage garbage" do
      errors = Queue.new
      connected_stream(stream_name, "small", errors: errors, max_content_bytes: 100)
      raw_redis.xgroup(:create, stream_name, "old", "$", mkstream: true)
      request = { "id" => SecureRandom.hex(11)[0, 21], "instance_id" => "abcdef", "status" => "pending",
                  "content" => "\"#{"z" * 200}\"", "source_group" => "old", "destination_group" => "small" }
      raw_redis.xadd(stream_name, request)
      reply = nil
      eventually do
        entries = raw_redis.xreadgroup("old", "consumer_abcdef_1", stream_name, ">", count: 10)&.dig(stream_name) || []
        reply ||= entries.map(&:last).find { |fields| fields["source_group"] == "small" }
      end
      expect(reply.keys).to contain_exactly(*%w[id instance_id status content source_group destination_group])
      expect(reply).to include("id" => request["id"], "instance_id" => "abcdef", "status" => "rejected", "destination_group" => "old")
      expect(JSON.parse(reply["content"])).to eq("request content is 202 bytes, over max_content_bytes (100) of group small")
      expect(Timeout.timeout(5) { errors.pop }).to be_a(RedisIPC::MalformedEntryError)

      # Without its source_group it cannot be answered: it stays garbage.
      length = raw_redis.xlen(stream_name)
      garbage = raw_redis.xadd(stream_name, request.except("source_group").merge("id" => SecureRandom.hex(11)[0, 21]))
      error = Timeout.timeout(5) { errors.pop }
      expect(error.message).to include(garbage, "missing")
      eventually { raw_redis.xrange(stream_name, garbage, garbage).empty? }
      sleep 0.2
      expect(raw_redis.xrange(stream_name, "-", "+").map(&:last).count { |f| f["destination_group"] == "old" }).to eq(1)
      expect(raw_redis.xlen(stream_name)).to be <= length
    end
  end
end
