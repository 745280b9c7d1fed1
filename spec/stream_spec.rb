# frozen_string_literal: true

require "spec_helper"

RSpec.describe RedisIPC::Stream do
  let(:stream_name) { unique("api") }

  describe ".new" do
    it "takes a stream and a group name" do
      s = described_class.new(stream_name, "group")
      expect([s.stream_name, s.group_name]).to eq([stream_name, "group"])
      expect(described_class.new(:sym, :grp).group_name).to eq("grp")
    end

    it "raises ArgumentError for blank or non-string-like names" do
      [nil, "", "  ", 42, [], "a\0b"].each do |bad|
        expect { described_class.new(bad, "g") }.to raise_error(ArgumentError), "stream #{bad.inspect}"
        expect { described_class.new("s", bad) }.to raise_error(ArgumentError), "group #{bad.inspect}"
      end
    end
  end

  describe "#on_request and #on_error" do
    it "store the blocks and return self" do
      s = described_class.new(stream_name, "g")
      expect(s.on_request { nil }).to be(s)
      expect(s.on_error { nil }).to be(s)
    end

    it "need a block" do
      s = described_class.new(stream_name, "g")
      expect { s.on_request }.to raise_error(ArgumentError)
      expect { s.on_error }.to raise_error(ArgumentError)
    end
  end

  describe "#connect" do
    it "raises ConfigurationError without an on_request block" do
      expect { described_class.new(stream_name, "g").connect }
        .to raise_error(RedisIPC::ConfigurationError, "Stream#on_request must be a lambda or proc")
    end

    it "accepts every documented option, with partial nested hashes" do
      s = described_class.new(stream_name, "g").on_request { nil }
      s.connect(redis_options: { url: redis_url }, logger: nil, pool_size: 2, max_pool_size: nil,
                ledger: { entry_timeout: 3 }, consumer: { pool_size: 1 }, dispatcher: { execution_interval: 0.5 })
      @streams = [s]
      expect(s).to be_connected
    end

    it "raises ArgumentError for unknown keys and invalid values" do
      s = described_class.new(stream_name, "g").on_request { nil }
      bad = [
        { bogus: 1 }, { pool_size: 0 }, { pool_size: "3" }, { max_pool_size: 2 }, { ledger: { entry_timeout: -1 } },
        { ledger: { nope: 1 } }, { ledger: 5 }, { consumer: { pool_size: 1.5 } }, { dispatcher: { pool_size: 0 } },
        { consumer: { execution_interval: 0 } }, { logger: Object.new }, { redis_options: { bogus: 1 } }
      ]
      bad.each do |options|
        expect { s.connect(redis_options: { url: redis_url }, **options) }.to raise_error(ArgumentError), options.inspect
      end
      expect(s).not_to be_connected
    end

    it "raises ConnectionError with the address when Redis cannot be reached" do
      s = described_class.new(stream_name, "g").on_request { nil }
      expect { s.connect(redis_options: { host: "127.0.0.1", port: 1, connect_timeout: 0.5 }) }
        .to raise_error(RedisIPC::ConnectionError, %r{redis://127\.0\.0\.1:1})
      expect { s.connect(redis_options: { path: "/nonexistent/redis.sock" }) }
        .to raise_error(RedisIPC::ConnectionError, %r{unix:///nonexistent/redis\.sock})
      expect(s).not_to be_connected
    end

    it "raises ConnectionError when already connected" do
      s = connected_stream(stream_name, "g")
      expect { s.connect(redis_options: { url: redis_url }) }.to raise_error(RedisIPC::ConnectionError, /already connected/)
    end

    it "reaches Redis over TCP too, and honours db" do
      skip "needs the suite's own server" unless $redis_server
      s = described_class.new(stream_name, "tcp").on_request { |e| fulfill_request(e, content: "tcp") }
      s.connect(redis_options: { host: "127.0.0.1", port: $redis_server.port, db: 2 })
      @streams = [s]
      expect(s.send_to_group(content: 1, to: "tcp").content).to eq("tcp")
      expect(Redis.new(url: "#{$redis_server.tcp_url}/2").exists?(stream_name)).to be(true)
    end

    it "logs to the given logger" do
      lines = []
      logger = Object.new
      %i[debug info warn error].each { |m| logger.define_singleton_method(m) { |msg| lines << [m, msg] } }
      s = described_class.new(stream_name, "g").on_request { nil }
      s.connect(redis_options: { url: redis_url }, logger: logger)
      s.disconnect
      expect(lines.map(&:last).join).to include("connected to #{stream_name}", "disconnected")
    end
  end

  describe "#send_to_group" do
    it "returns the reply as an Entry" do
      connected_stream(stream_name, "child") { |e| fulfill_request(e, content: { got: e.content }) }
      parent = connected_stream(stream_name, "parent")
      reply = parent.send_to_group(content: { n: 1, s: "x" }, to: "child")
      expect(reply).to be_a(RedisIPC::Stream::Entry)
      expect(reply).to be_fulfilled
      expect(reply).not_to be_rejected
      expect(reply).not_to be_pending
      expect(reply.status).to eq("fulfilled")
      expect(reply.content).to eq({ got: { n: 1, s: "x" } })
      expect(reply.value).to eq(reply.content)
      expect(reply.reason).to be_nil
      expect(reply.source_group).to eq("child")
      expect(reply.destination_group).to eq("parent")
      expect(reply.instance_id).to eq(parent.instance_id)
      expect(reply.id).to match(/\A[0-9a-f]{21}\z/)
      expect(reply.redis_id).to match(/\A\d+-\d+\z/)
    end

    it "hands the request handler an Entry with the request's fields" do
      seen = Queue.new
      child = connected_stream(stream_name, "child") do |e|
        seen << e
        fulfill_request(e, content: nil)
      end
      parent = connected_stream(stream_name, "parent")
      parent.send_to_group(content: "hi", to: "child")
      req = seen.pop
      expect([req.status, req.content, req.source_group, req.destination_group, req.instance_id])
        .to eq(["pending", "hi", "parent", "child", parent.instance_id])
      expect(req).to be_pending
      expect(child.instance_id).to match(/\A[0-9a-f]{6}\z/)
    end

    it "carries every JSON-compatible value, a String that looks like JSON staying a String" do
      connected_stream(stream_name, "echo")
      parent = connected_stream(stream_name, "parent")
      ["42", 42, 4.5, nil, true, false, "", "null", [1, [2, { a: "b" }]], { "k" => "v" }, "ünïcødé ✓"].each do |value|
        expected = value.is_a?(Hash) ? value.transform_keys(&:to_sym) : value
        expect(parent.send_to_group(content: value, to: "echo").content).to eq(expected)
      end
    end

    it "returns rejected replies" do
      connected_stream(stream_name, "child") { |e| reject_request(e, content: "No! <Tantrum initiated>") }
      reply = connected_stream(stream_name, "parent").send_to_group(content: "please", to: "child")
      expect(reply).to be_rejected
      expect(reply.reason).to eq("No! <Tantrum initiated>")
      expect(reply.value).to be_nil
    end

    it "raises TimeoutError when no reply comes within the timeout, and frees the ledger slot" do
      parent = connected_stream(stream_name, "parent")
      started = monotonic
      expect { parent.send_to_group(content: 1, to: "nobody", fail_fast: false, timeout: 0.3) }
        .to raise_error(RedisIPC::TimeoutError, /nobody/)
      expect(monotonic - started).to be >= 0.3
      expect(parent.stats[:ledger_size]).to eq(0)
    end

    it "waits ledger.entry_timeout by default" do
      parent = connected_stream(stream_name, "parent", ledger: { entry_timeout: 0.4 })
      started = monotonic
      expect { parent.send_to_group(content: 1, to: "nobody", fail_fast: false) }.to raise_error(RedisIPC::TimeoutError)
      expect(monotonic - started).to be_between(0.4, 3)
    end

    it "checks its arguments before writing anything" do
      parent = connected_stream(stream_name, "parent")
      length = raw_redis.xlen(stream_name)
      expect { parent.send_to_group(content: Object.new, to: "x") }.to raise_error(ArgumentError)
      expect { parent.send_to_group(content: 1, to: 42) }.to raise_error(ArgumentError)
      expect { parent.send_to_group(content: 1, to: "") }.to raise_error(ArgumentError)
      expect { parent.send_to_group(content: 1, to: "x", timeout: -1) }.to raise_error(ArgumentError)
      expect { parent.send_to_group(content: 1, to: "x", timeout: "1") }.to raise_error(ArgumentError)
      expect { parent.send_to_group(to: "x") }.to raise_error(ArgumentError)
      expect(raw_redis.xlen(stream_name)).to eq(length)
    end

    it "raises ConnectionError when not connected" do
      s = described_class.new(stream_name, "g")
      expect { s.send_to_group(content: 1, to: "x") }.to raise_error(RedisIPC::ConnectionError, /not connected/)
    end
  end

  describe "answering" do
    it "lets a request be answered later, from another thread" do
      pending_requests = Queue.new
      child = connected_stream(stream_name, "child") { |e| pending_requests << e }
      answerer = Thread.new { child.fulfill_request(pending_requests.pop, content: "later") }
      expect(connected_stream(stream_name, "parent").send_to_group(content: 1, to: "child").content).to eq("later")
      answerer.join
    end

    it "refuses to answer a request twice" do
      errors = Queue.new
      outcome = Queue.new
      connected_stream(stream_name, "child") do |e|
        fulfill_request(e, content: 1)
        begin
          reject_request(e, content: 2)
        rescue RedisIPC::Error => err
          outcome << err
        end
      end
      reply = connected_stream(stream_name, "parent", errors: errors).send_to_group(content: 1, to: "child")
      expect(reply.content).to eq(1)
      expect(outcome.pop.message).to match(/already answered/)
    end

    it "refuses entries that are not pending requests" do
      connected_stream(stream_name, "echo")
      parent = connected_stream(stream_name, "parent")
      reply = parent.send_to_group(content: 1, to: "echo")
      expect { parent.fulfill_request(reply, content: 1) }.to raise_error(ArgumentError, /pending/)
      expect { parent.fulfill_request("nope", content: 1) }.to raise_error(ArgumentError, /Entry/)
    end

    it "rejects at once when the handler raises, reports the error and keeps serving" do
      errors = Queue.new
      calls = 0
      connected_stream(stream_name, "child", errors: errors) do |e|
        calls += 1
        raise ArgumentError, "bad input #{e.content}" if calls == 1

        fulfill_request(e, content: "fine")
      end
      parent = connected_stream(stream_name, "parent")
      started = monotonic
      reply = parent.send_to_group(content: 7, to: "child", timeout: 5)
      expect(monotonic - started).to be < 2
      expect(reply).to be_rejected
      expect(reply.content).to eq("ArgumentError: bad input 7")
      error = errors.pop
      expect(error).to be_a(ArgumentError)
      expect(error.message).to eq("bad input 7")
      expect(parent.send_to_group(content: 8, to: "child").content).to eq("fine")
    end

    it "survives an on_error block that raises" do
      child = described_class.new(stream_name, "child")
      child.on_request { |_e| raise "boom" }
      child.on_error { |_e| raise "on_error broke too" }
      child.connect(redis_options: { url: redis_url })
      @streams = [child]
      parent = connected_stream(stream_name, "parent")
      2.times { expect(parent.send_to_group(content: 1, to: "child")).to be_rejected }
    end
  end

  describe "#disconnect" do
    it "returns self, stops every thread it started and is safe to call twice" do
      before = Thread.list.size
      s = connected_stream(stream_name, "g", consumer: { pool_size: 4 })
      # Consumers start on demand (spec/consumers_spec.rb): the process's
      # watcher is the only thread a connect starts.
      expect(Thread.list.size).to eq(before + 1)
      expect(s.send_to_group(content: 1, to: "g").content).to eq(1)
      expect(Thread.list.size).to be > before + 1
      expect(s.disconnect).to be(s)
      expect(s).not_to be_connected
      expect(Thread.list.size).to eq(before)
      expect(s.disconnect).to be(s)
    end

    it "removes this instance from the consumers list, and can connect again as a new instance" do
      s = connected_stream(stream_name, "g")
      first = s.instance_id
      key = "#{stream_name}:g:#{first}:consumers"
      expect(raw_redis.lrange(key, 0, -1)).to eq(["consumer_#{first}_1"])
      s.disconnect
      expect(raw_redis.lrange(key, 0, -1)).to eq([])
      s.connect(redis_options: { url: redis_url })
      expect(s.instance_id).not_to eq(first)
      expect(s.send_to_group(content: "again", to: "g").content).to eq("again")
    end

    it "fails waiting senders with ConnectionError" do
      parent = connected_stream(stream_name, "parent")
      waiter = Thread.new do
        parent.send_to_group(content: 1, to: "nobody", fail_fast: false, timeout: 10)
      rescue RedisIPC::Error => e
        e
      end
      sleep 0.2
      started = monotonic
      parent.disconnect
      expect(waiter.value).to be_a(RedisIPC::ConnectionError)
      expect(monotonic - started).to be < 2
    end

    it "waits a bounded time for running handlers" do
      started_handler = Queue.new
      s = connected_stream(stream_name, "slow", ledger: { entry_timeout: 0.5 }) do |_e|
        started_handler << true
        sleep 30
      end
      sender = connected_stream(stream_name, "sender")
      Thread.new { sender.send_to_group(content: 1, to: "slow", timeout: 0.4) rescue nil }
      started_handler.pop
      started = monotonic
      s.disconnect
      expect(monotonic - started).to be < 3
    end

    it "can be called from inside a handler" do
      done = Queue.new
      s = connected_stream(stream_name, "self") do |e|
        fulfill_request(e, content: 1)
        disconnect
        done << connected?
      end
      connected_stream(stream_name, "other").send_to_group(content: 1, to: "self")
      expect(done.pop).to be(false)
      expect(s).not_to be_connected
    end
  end
end
