# frozen_string_literal: true

require "spec_helper"

RSpec.describe "bad input" do
  let(:stream_name) { unique("bad") }

  def entry(**fields)
    { "id" => SecureRandom.hex(11)[0, 21], "instance_id" => "f0f0f0", "status" => "pending", "content" => "1",
      "source_group" => "foreign", "destination_group" => "victim" }.merge(fields.transform_keys(&:to_s))
  end

  FOREIGN_ENTRIES = {
    "a missing field" => ->(e) { e.except("source_group") },
    "only a destination" => ->(_e) { { "destination_group" => "victim" } },
    "an extra field" => ->(e) { e.merge("extra" => "field") },
    "an unknown status" => ->(e) { e.merge("status" => "maybe") },
    "invalid UTF-8" => ->(e) { e.merge("content" => "\xff\xfe\xfd".b) },
    "invalid UTF-8 in a group name" => ->(e) { e.merge("source_group" => "gr\xc3oup".b) },
    # (an oversized request is answered: spec/robustness_spec.rb)
    "an 8 MB content in a reply" => ->(e) { e.merge("status" => "fulfilled", "content" => "x" * (8 * 1024 * 1024)) },
    "an empty content" => ->(e) { e.merge("content" => "") },
    "an empty id" => ->(e) { e.merge("id" => "") },
    "a reply to a request nobody sent" => ->(e, victim) { e.merge("status" => "fulfilled", "instance_id" => victim.instance_id) },
    "no fields we know" => ->(_e) { { "nonsense" => "entry" } }
  }.freeze

  FOREIGN_ENTRIES.each do |what, build|
    it "acknowledges, removes and reports an entry with #{what}, and keeps serving" do
      errors = Queue.new
      victim = connected_stream(stream_name, "victim", errors: errors)
      redis_id = raw_redis.xadd(stream_name, build.arity == 2 ? build.call(entry, victim) : build.call(entry))
      error = Timeout.timeout(5) { errors.pop }
      expect(error).to be_a(RedisIPC::MalformedEntryError)
      expect(error.message).to include(redis_id)
      eventually { raw_redis.xrange(stream_name, redis_id, redis_id).empty? }
      expect(raw_redis.xpending(stream_name, "victim")["size"]).to eq(0)
      expect(connected_stream(stream_name, "sender").send_to_group(content: "still here", to: "victim").content)
        .to eq("still here")
      eventually { victim.stats[:inflight_requests].zero? } # the acknowledgement trails the reply
    end
  end

  it "reports a reply that comes after its sender timed out" do
    errors = Queue.new
    sender = connected_stream(stream_name, "victim", errors: errors)
    raw_redis.xgroup(:create, stream_name, "slow", "$", mkstream: true)
    expect { sender.send_to_group(content: 1, to: "slow", timeout: 0.2, fail_fast: false) }.to raise_error(RedisIPC::TimeoutError)
    _id, request = raw_redis.xreadgroup("slow", "c", stream_name, ">", count: 10)[stream_name]
      .find { |_, fields| fields["destination_group"] == "slow" }
    late = raw_redis.xadd(stream_name, request.merge("status" => "fulfilled", "source_group" => "slow",
                                                     "destination_group" => "victim"))
    error = Timeout.timeout(5) { errors.pop }
    expect(error).to be_a(RedisIPC::MalformedEntryError)
    expect(error.message).to match(/not waiting/)
    eventually { raw_redis.xrange(stream_name, late, late).empty? }
  end

  it "ignores a second reply to the same request quietly (at-least-once delivery)" do
    errors = Queue.new
    raw_redis.xgroup(:create, stream_name, "twice", "$", mkstream: true)
    raw_redis.xgroup(:createconsumer, stream_name, "twice", "c") # as a 1.x peer does at start
    sender = connected_stream(stream_name, "victim", errors: errors)
    answerer = Thread.new do
      redis = Redis.new(url: redis_url)
      request = nil
      until request
        result = redis.xreadgroup("twice", "c", stream_name, ">", count: 10, block: 100)
        request = result&.dig(stream_name)&.find { |_, f| f["destination_group"] == "twice" }&.last
      end
      reply = request.merge("status" => "fulfilled", "content" => '"first"', "source_group" => "twice",
                            "destination_group" => "victim")
      redis.xadd(stream_name, reply)
      sleep 0.2
      redis.xadd(stream_name, reply.merge("content" => '"second"'))
    ensure
      redis&.close
    end
    expect(sender.send_to_group(content: 1, to: "twice").content).to eq("first")
    answerer.join
    sleep 0.3
    expect(errors.size).to eq(0)
    eventually { raw_redis.xpending(stream_name, "victim")["size"].zero? }
  end

  describe "arguments" do
    it "refuses content over max_content_bytes before writing anything" do
      sender = connected_stream(stream_name, "sender", max_content_bytes: 1000)
      length = raw_redis.xlen(stream_name)
      expect { sender.send_to_group(content: "x" * 1000, to: "other") }.to raise_error(ArgumentError, /max_content_bytes/)
      expect(raw_redis.xlen(stream_name)).to eq(length)
    end

    it "refuses a reply over max_content_bytes, and the request can still be answered" do
      outcome = Queue.new
      connected_stream(stream_name, "victim", max_content_bytes: 100) do |e|
        fulfill_request(e, content: "y" * 200)
      rescue ArgumentError => err
        outcome << err
        fulfill_request(e, content: "small")
      end
      expect(connected_stream(stream_name, "sender").send_to_group(content: 1, to: "victim").content).to eq("small")
      expect(outcome.pop.message).to match(/max_content_bytes/)
    end

    it "validates the new connect options" do
      s = RedisIPC::Stream.new(stream_name, "g").on_request { nil }
      [{ max_content_bytes: 0 }, { retention: -1 }, { takeover: { heartbeat_interval: 1, dead_after: 0.5 } },
       { takeover: { bogus: 1 } }].each do |options|
        expect { s.connect(redis_options: { url: redis_url }, **options) }.to raise_error(ArgumentError), options.inspect
      end
    end
  end

  describe "retention" do
    # Not under valgrind: waits out the retention; other examples reach its C paths.
    it "trims entries no group will handle once they are older than the retention, never pending ones", valgrind: false do
      raw_redis.xgroup(:create, stream_name, "holder", "$", mkstream: true)
      nobody = raw_redis.xadd(stream_name, entry(destination_group: "nobody"))
      held = raw_redis.xadd(stream_name, entry(destination_group: "holder"))
      sleep 1.1
      raw_redis.xreadgroup("holder", "c", stream_name, ">", count: 10) # `held` is now pending in "holder"
      # (reading also delivered `nobody` to holder: acknowledge that one, as every group does)
      raw_redis.xack(stream_name, "holder", nobody)
      connected_stream(stream_name, "trimmer", retention: 1)
      eventually(within: 5) { raw_redis.xrange(stream_name, nobody, nobody).empty? }
      expect(raw_redis.xrange(stream_name, held, held)).not_to be_empty
    end
  end
end
