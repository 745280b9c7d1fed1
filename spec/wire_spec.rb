# frozen_string_literal: true

require "spec_helper"

# A foreign peer written from WIRE.md with raw Redis commands, standing in
# for a process that runs the pure-Ruby 1.x gem.
RSpec.describe "the wire contract (WIRE.md)" do
  let(:stream_name) { unique("wire") }
  let(:fields) { %w[id instance_id status content source_group destination_group] }

  # Reads one entry for `group` as consumer `consumer`, acknowledging
  # entries meant for other groups as 1.x does.
  def foreign_read(redis, group, consumer, timeout: 5)
    deadline = monotonic + timeout
    while monotonic < deadline
      result = redis.xreadgroup(group, consumer, stream_name, ">", count: 1, block: 200)
      next if result.nil? || result.empty?

      redis_id, entry = result[stream_name].first
      return [redis_id, entry] if entry["destination_group"] == group

      redis.xack(stream_name, group, redis_id)
    end
    raise "no entry for #{group} within #{timeout}s"
  end

  # Creates the group and, as 1.x does at start, its consumer.
  def foreign_join(redis, group, consumer = "consumer_abcdef_1")
    begin
      redis.xgroup(:create, stream_name, group, "$", mkstream: true)
    rescue Redis::CommandError => e
      raise unless e.message.start_with?("BUSYGROUP")
    end
    redis.xgroup(:createconsumer, stream_name, group, consumer)
  end

  it "creates its group and lists its consumer under its instance" do
    s = connected_stream(stream_name, "ours")
    groups = raw_redis.xinfo(:groups, stream_name).map { |g| g["name"] }
    expect(groups).to include("ours")
    expect(raw_redis.lrange("#{stream_name}:ours:#{s.instance_id}:consumers", 0, -1)).to eq(["consumer_#{s.instance_id}_1"])
    consumers = raw_redis.xinfo(:consumers, stream_name, "ours").map { |c| c["name"] }
    expect(consumers).to include("consumer_#{s.instance_id}_1", "dispatcher_#{s.instance_id}_1", "dispatcher_#{s.instance_id}_2")
  end

  it "sends requests a foreign peer can answer: six fields, JSON content, raw replies read as 1.x does" do
    foreign_join(raw_redis, "foreign")
    parent = connected_stream(stream_name, "parent")
    peer = Thread.new do
      redis = Redis.new(url: redis_url)
      redis_id, request = foreign_read(redis, "foreign", "consumer_abcdef_1")
      # 1.x writes a String payload raw: "42" must arrive as the Integer 42.
      redis.xadd(stream_name, request.merge("status" => "fulfilled", "content" => "42",
                                            "source_group" => "foreign", "destination_group" => "parent"))
      redis.xack(stream_name, "foreign", redis_id)
      redis.xdel(stream_name, redis_id)
      request
    ensure
      redis&.close
    end
    reply = parent.send_to_group(content: { "ask" => "x" }, to: "foreign")
    request = peer.value
    expect(request.keys.sort).to eq(fields.sort)
    expect(request).to include("status" => "pending", "content" => '{"ask":"x"}', "source_group" => "parent",
                               "destination_group" => "foreign", "instance_id" => parent.instance_id)
    expect(request["id"]).to match(/\A[0-9a-f]{21}\z/)
    expect(reply).to be_fulfilled
    expect(reply.content).to eq(42)
    expect(reply.id).to eq(request["id"])
  end

  it "answers a request a foreign peer writes, with the reply shaped as 1.x expects" do
    child = connected_stream(stream_name, "child") { |e| fulfill_request(e, content: "Yes, creators") }
    foreign_join(raw_redis, "foreign")
    raw_redis.lpush("#{stream_name}:foreign:abc123:consumers", "consumer_abc123_1")
    raw_redis.xadd(stream_name, { "id" => "0123456789abcdef01234", "instance_id" => "abc123", "status" => "pending",
                                "content" => "Please", "source_group" => "foreign", "destination_group" => "child" })
    _redis_id, reply = foreign_read(raw_redis, "foreign", "dispatcher_abc123_1")
    expect(reply.keys.sort).to eq(fields.sort)
    expect(reply).to eq("id" => "0123456789abcdef01234", "instance_id" => "abc123", "status" => "fulfilled",
                        "content" => '"Yes, creators"', "source_group" => "child", "destination_group" => "foreign")
    # The request was acknowledged and deleted by the group that handled it.
    eventually { raw_redis.xpending(stream_name, "child")["size"].zero? }
    expect(child).to be_connected
  end

  it "receives a reply that a 1.x instance of its own group hands over to its listed consumer" do
    foreign_join(raw_redis, "foreign")
    parent = connected_stream(stream_name, "parent")
    peer = Thread.new do
      redis = Redis.new(url: redis_url)
      redis_id, request = foreign_read(redis, "foreign", "consumer_abcdef_1")
      reply = request.merge("status" => "fulfilled", "content" => '"via 1.x"', "source_group" => "foreign",
                            "destination_group" => "parent")
      # A 1.x dispatcher of group "parent" reads the reply before ours can
      # (MULTI makes that certain), acknowledges what else it read (our own
      # request, when our dispatchers have not read it yet), finds our
      # listed consumer and XCLAIMs the reply to it.
      results = redis.multi do |tx|
        tx.xadd(stream_name, reply)
        tx.xreadgroup("parent", "dispatcher_0ld1x0_1", stream_name, ">", count: 100)
      end
      reply_id = results[0]
      others = results[1].fetch(stream_name, []).map(&:first) - [reply_id]
      redis.xack(stream_name, "parent", others) unless others.empty?
      listed = redis.lrange("#{stream_name}:parent:#{request["instance_id"]}:consumers", 0, -1)
      redis.xclaim(stream_name, "parent", listed.sample, 0, reply_id)
      redis.xack(stream_name, "foreign", redis_id)
      listed
    ensure
      redis&.close
    end
    reply = parent.send_to_group(content: "hi", to: "foreign", timeout: 5)
    expect(peer.value).to eq(["consumer_#{parent.instance_id}_1"])
    expect(reply.content).to eq("via 1.x")
    eventually { raw_redis.xpending(stream_name, "parent")["size"].zero? }
  end

  it "hands replies for another instance of its group to that instance's listed consumer" do
    foreign_join(raw_redis, "foreign")
    ours = connected_stream(stream_name, "parent")
    # A 1.x instance of the same group that sent a request; the reply comes
    # to our dispatchers, which must XCLAIM it to the 1.x consumer.
    raw_redis.lpush("#{stream_name}:parent:0ld1x0:consumers", "consumer_0ld1x0_1")
    raw_redis.xadd(stream_name, { "id" => "fedcba9876543210fedcb", "instance_id" => "0ld1x0", "status" => "fulfilled",
                                "content" => "1", "source_group" => "foreign", "destination_group" => "parent" })
    claimed = eventually do
      pending = raw_redis.xpending(stream_name, "parent", "-", "+", 10)
      pending.find { |p| p["consumer"] == "consumer_0ld1x0_1" }
    end
    expect(claimed).to be_truthy
    # With no consumer listed for the instance, the reply is acknowledged and dropped.
    raw_redis.xadd(stream_name, { "id" => "fedcba9876543210fedc0", "instance_id" => "9ne9ne", "status" => "fulfilled",
                                "content" => "1", "source_group" => "foreign", "destination_group" => "parent" })
    eventually { raw_redis.xpending(stream_name, "parent")["size"] == 1 }
    expect(ours).to be_connected
  end

  it "acknowledges entries meant for other groups, and leaves them in the stream" do
    connected_stream(stream_name, "bystander")
    id = raw_redis.xadd(stream_name, { "id" => "x" * 21, "instance_id" => "abc123", "status" => "pending",
                                     "content" => "1", "source_group" => "a", "destination_group" => "b" })
    eventually { raw_redis.xinfo(:groups, stream_name).find { |g| g["name"] == "bystander" }["last-delivered-id"] == id }
    eventually { raw_redis.xpending(stream_name, "bystander")["size"].zero? }
    expect(raw_redis.xrange(stream_name, id, id)).not_to be_empty
  end

  it "sends the acknowledgements of other groups' entries that still wait when it disconnects" do
    bystander = connected_stream(stream_name, "bystander")
    id = raw_redis.xadd(stream_name, { "id" => "y" * 21, "instance_id" => "abc123", "status" => "pending",
                                     "content" => "1", "source_group" => "a", "destination_group" => "b" })
    eventually { raw_redis.xinfo(:groups, stream_name).find { |g| g["name"] == "bystander" }["last-delivered-id"] == id }
    bystander.disconnect
    expect(raw_redis.xpending(stream_name, "bystander")["size"]).to eq(0)
  end

  it "acknowledges other groups' entries along with its own XACKs: two per sequential round trip" do
    connected_stream(stream_name, "responder")
    sender = connected_stream(stream_name, "sender")
    sender.send_to_group(content: 0, to: "responder")
    xacks = -> { raw_redis.info("commandstats").fetch("xack", {}).fetch("calls", 0).to_i }
    before = xacks.call
    50.times { |i| sender.send_to_group(content: i, to: "responder") }
    # Each group acknowledges both entries of a round trip: 4 ids in 2 XACKs.
    expect(xacks.call - before).to be <= 2 * 50 + 5
    eventually { %w[responder sender].all? { |g| raw_redis.xpending(stream_name, g)["size"].zero? } }
  end

  it "reports garbage addressed to it through on_error, removes it and keeps serving" do
    errors = Queue.new
    connected_stream(stream_name, "victim", errors: errors)
    garbage = [
      { "destination_group" => "victim" },
      { "id" => "1", "instance_id" => "a", "status" => "pending", "content" => "1", "source_group" => "x",
        "destination_group" => "victim", "extra" => "field" },
      { "id" => "1", "instance_id" => "a", "status" => "weird", "content" => "1", "source_group" => "x",
        "destination_group" => "victim" },
      { "id" => "1", "instance_id" => "a", "status" => "pending", "content" => "\xff\xfe".b, "source_group" => "x",
        "destination_group" => "victim" },
      { "nonsense" => "entry" }
    ]
    ids = garbage.map { |fields| raw_redis.xadd(stream_name, fields) }
    reported = Array.new(garbage.size) { errors.pop }
    expect(reported).to all(be_a(RedisIPC::MalformedEntryError))
    eventually { ids.all? { |id| raw_redis.xrange(stream_name, id, id).empty? } }
    expect(raw_redis.xpending(stream_name, "victim")["size"]).to eq(0)
    expect(connected_stream(stream_name, "sender").send_to_group(content: 1, to: "victim").content).to eq(1)
  end
end
