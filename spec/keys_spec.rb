# frozen_string_literal: true

require "spec_helper"

# Every key and consumer name is built in one place (ext/redis_ipc/engine/
# ipc_keys.c), whole, whatever the length of the names.
RSpec.describe "keys" do
  it "keeps long stream and group names whole: two groups differing only at the end never share a key" do
    stream_name = unique("s" * 3000)
    long = "g" * 2000
    errors = Queue.new
    a = connected_stream(stream_name, "#{long}-a", errors: errors)
    b = connected_stream(stream_name, "#{long}-b", errors: errors)
    expect(a.send_to_group(content: "hi", to: "#{long}-b", timeout: 5).content).to eq("hi")
    expect(b.send_to_group(content: "ho", to: "#{long}-a", timeout: 5).content).to eq("ho")
    [[a, "#{long}-a"], [b, "#{long}-b"]].each do |stream, group|
      eventually { raw_redis.zrange("#{stream_name}:#{group}:instances", 0, -1) == [stream.instance_id] }
      expect(raw_redis.lrange("#{stream_name}:#{group}:#{stream.instance_id}:consumers", 0, -1))
        .to eq(["consumer_#{stream.instance_id}_1"])
    end
    expect(errors).to be_empty
  end
end
