# frozen_string_literal: true

require "spec_helper"

# The direct lanes between instances of this gem (docs/wire.md, section 7):
# requests to <stream>:<group>:requests, replies to
# <stream>:<group>:<instance_id>:replies, and the shared stream (the 1.x
# wire) for any group with another kind of member.
RSpec.describe "direct lanes", timeout: 60 do
  let(:stream_name) { unique("lanes") }

  def entries_added(key)
    info = raw_redis.xinfo(:stream, key)
    info["entries-added"] || info["entries_added"]
  rescue Redis::CommandError # no such key
    nil
  end

  def requests_lane(group) = "#{stream_name}:#{group}:requests"
  def replies_lane(stream) = "#{stream_name}:#{stream.group_name}:#{stream.instance_id}:replies"

  it "carries requests and replies between instances of this gem, the shared stream untouched, and goes with its instance" do
    workers = connected_stream(stream_name, "workers")
    sender = connected_stream(stream_name, "sender")
    shared_before = entries_added(stream_name)
    50.times { |i| expect(sender.send_to_group(content: i, to: "workers").content).to eq(i) }
    expect(entries_added(stream_name)).to eq(shared_before)
    expect(entries_added(requests_lane("workers"))).to eq(50)
    expect(entries_added(replies_lane(sender))).to eq(50)
    # Handled entries are deleted; nothing is left pending. The last
    # request's XACK and XDEL ride the responder's next write, or the
    # service thread sends them: soon after its reply, not before it.
    eventually do
      raw_redis.xlen(requests_lane("workers")).zero? && raw_redis.xlen(replies_lane(sender)).zero? &&
        raw_redis.xpending(requests_lane("workers"), "workers")["size"].zero?
    end
    # The readers of a requests lane are the group's instances' consumers.
    names = raw_redis.xinfo(:consumers, requests_lane("workers"), "workers").map { |c| c["name"] }
    expect(names).to include("consumer_#{workers.instance_id}_1", "dispatcher_#{workers.instance_id}_1")

    lane = replies_lane(sender)
    sender.disconnect
    expect(raw_redis.exists?(lane)).to be(false)
    workers.disconnect
    expect(raw_redis.xinfo(:consumers, requests_lane("workers"), "workers")).to eq([])
  end

  it "keeps a group's route while it is in use: asked again in the background, never stale" do
    connected_stream(stream_name, "workers")
    sender = connected_stream(stream_name, "sender")
    shared_before = entries_added(stream_name)
    # Past the 2 s after which an answer that was not asked again is no longer trusted.
    6.times do |round|
      10.times { |i| expect(sender.send_to_group(content: i, to: "workers").content).to eq(i) }
      sleep 0.6 unless round == 5
    end
    expect(entries_added(stream_name)).to eq(shared_before)
    expect(entries_added(requests_lane("workers"))).to eq(60)
  end

  it "sends on the shared stream to a group that has a member of another kind (1.x), and answers it there" do
    # A 1.x member of "workers", written from WIRE.md: a consumer on the shared stream only.
    raw_redis.xgroup(:create, stream_name, "workers", "$", mkstream: true)
    raw_redis.xgroup(:createconsumer, stream_name, "workers", "consumer_abcdef_1")
    connected_stream(stream_name, "workers")
    sender = connected_stream(stream_name, "sender")
    # The 1.x member does not read, so ours answers; the request went the 1.x way.
    expect(sender.send_to_group(content: "mixed", to: "workers", timeout: 10).content).to eq("mixed")
    expect(entries_added(requests_lane("workers"))).to eq(0)
    expect(entries_added(stream_name)).to be >= 2 # the request and its reply
    expect(entries_added(replies_lane(sender))).to eq(0)
  end

  it "reports garbage written to a direct lane through on_error, removes it and keeps serving" do
    errors = Queue.new
    workers = connected_stream(stream_name, "workers", errors: errors)
    sender = connected_stream(stream_name, "sender", errors: errors)
    expect(sender.send_to_group(content: 1, to: "workers").content).to eq(1)
    raw_redis.xadd(requests_lane("workers"), { "junk" => "x" })
    raw_redis.xadd(requests_lane("workers"), { "id" => "a" * 21, "instance_id" => "abcdef", "status" => "fulfilled",
                                               "content" => "1", "source_group" => "x", "destination_group" => "workers" })
    raw_redis.xadd(requests_lane("workers"), { "id" => "b" * 21, "instance_id" => "abcdef", "status" => "pending",
                                               "content" => "1", "source_group" => "x", "destination_group" => "other" })
    raw_redis.xadd(replies_lane(sender), { "id" => "c" * 21, "instance_id" => sender.instance_id, "status" => "pending",
                                           "content" => "1", "source_group" => "x", "destination_group" => "sender" })
    reported = Array.new(4) { Timeout.timeout(5) { errors.pop } }
    expect(reported).to all(be_a(RedisIPC::MalformedEntryError))
    expect(reported.map(&:message).join("\n")).to include("requests lane", "replies lane", "not a request", "another group")
    expect(sender.send_to_group(content: 2, to: "workers").content).to eq(2)
    # (acknowledged and deleted once its reply is written: moments after the reply arrives)
    eventually { raw_redis.xlen(requests_lane("workers")).zero? && raw_redis.xlen(replies_lane(sender)).zero? }
    expect(workers).to be_connected
  end

  it "writes on the shared stream when the requests lane is gone (NOMKSTREAM), and loses nothing" do
    workers = connected_stream(stream_name, "workers")
    sender = connected_stream(stream_name, "sender")
    expect(sender.send_to_group(content: 1, to: "workers").content).to eq(1)
    raw_redis.del(requests_lane("workers"))
    # The lane is recreated when the dispatchers re-join (NOGROUP): either way the request arrives.
    20.times { |i| expect(sender.send_to_group(content: i, to: "workers").content).to eq(i) }
    expect(workers).to be_connected
  end

  it "lets an instance of the group take over the requests a dead one held on the lane, flagged redelivered" do
    errors = Queue.new
    victim = start_fixture("responder.rb", stream_name, "workers", 30) # holds each request 30 s
    sender = connected_stream(stream_name, "sender", ledger: { entry_timeout: 15 })
    # The first request to a group learns its route (a request the victim will hold and
    # never answer in time; its late reply is only reported to the sender).
    expect { sender.send_to_group(content: "route", to: "workers", timeout: 0.2) }.to raise_error(RedisIPC::TimeoutError)
    replies = Array.new(6) { |i| sender.send_to_group_async(content: i, to: "workers") }
    eventually { raw_redis.xpending(requests_lane("workers"), "workers")["size"] == 7 }
    survivor = connected_stream(stream_name, "workers", errors: errors) do |entry|
      fulfill_request(entry, content: { by: "survivor", redelivered: entry.redelivered? })
    end
    Process.kill(:KILL, victim.pid)
    results = replies.map { |r| r.value.content }
    expect(results.map { |c| c[:by] }).to all(eq("survivor"))
    expect(results.map { |c| c[:redelivered] }).to all(be(true))
    eventually { raw_redis.xpending(requests_lane("workers"), "workers")["size"].zero? }
    names = raw_redis.xinfo(:consumers, requests_lane("workers"), "workers").map { |c| c["name"] }
    expect(names).to all(include(survivor.instance_id)) # the dead instance's consumers are gone
    expect(raw_redis.exists?("#{stream_name}:workers:#{victim.instance_id}:replies")).to be(false)
    expect(errors.size).to eq(0), -> { errors.pop.inspect }
  end

  it "trims entries of a requests lane that nobody will read once older than retention, as it trims the stream" do
    # An entry the group's read position is already past (as after an XDEL that was lost):
    # no reader will ever take it, and nobody holds it pending.
    lane = requests_lane("workers")
    raw_redis.xadd(lane, { "id" => "e" * 21, "instance_id" => "abcdef", "status" => "pending", "content" => "1",
                           "source_group" => "x", "destination_group" => "workers" }, id: "1-1")
    raw_redis.xgroup(:create, lane, "workers", "$")
    connected_stream(stream_name, "workers", retention: 1)
    eventually(within: 10) { raw_redis.xlen(lane).zero? }
  end
end
