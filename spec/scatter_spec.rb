# frozen_string_literal: true

require "spec_helper"

# send_to_groups / send_to_groups_async: one request per group, all in
# flight at once, gathered into { group => Entry or error }.
RSpec.describe "scatter-gather", timeout: 60 do
  let(:stream_name) { unique("scatter") }
  let(:sender) { connected_stream(stream_name, "sender") }

  it "asks several groups at once and returns each reply by group, in the order asked" do
    # Each handler waits for the other's request: both must be in flight together.
    met = { "a" => Queue.new, "b" => Queue.new }
    %w[a b].each do |group|
      other = group == "a" ? "b" : "a"
      connected_stream(stream_name, group) do |entry|
        met[other] << true
        met[group].pop
        fulfill_request(entry, content: "#{group}:#{entry.content}")
      end
    end
    connected_stream(stream_name, "no") { |entry| reject_request(entry, content: "never") }
    replies = sender.send_to_groups(content: "q", to: %w[b a no], timeout: 10)
    expect(replies.keys).to eq(%w[b a no])
    expect(replies.values_at("a", "b").map(&:content)).to eq(%w[a:q b:q])
    expect(replies["no"]).to be_rejected
    expect(replies["no"].content).to eq("never")
  end

  it "gives each group's error in its place: no responders, timeout" do
    connected_stream(stream_name, "echo")
    gate = Queue.new
    connected_stream(stream_name, "stuck") { |_entry| gate.pop }
    replies = sender.send_to_groups(content: 1, to: %w[echo stuck nobody], timeout: 0.5)
    expect(replies["echo"].content).to eq(1)
    expect(replies["stuck"].class).to eq(RedisIPC::TimeoutError)
    expect(replies["nobody"]).to be_a(RedisIPC::NoRespondersError)
    gate << true
  end

  it "returns a PendingReplies at once from the async form" do
    gate = Queue.new
    connected_stream(stream_name, "gated") do |entry|
      gate.pop
      fulfill_request(entry, content: entry.content)
    end
    connected_stream(stream_name, "echo")
    pending = sender.send_to_groups_async(content: 7, to: %w[gated echo], timeout: 10)
    expect(pending.groups).to eq(%w[gated echo])
    expect(pending["echo"].value.content).to eq(7)
    expect(pending.wait(0.05)).to be_nil
    expect(pending.ready?).to be(false)
    gate << true
    replies = pending.value
    expect(replies.transform_values(&:content)).to eq("gated" => 7, "echo" => 7)
    expect(pending.ready?).to be(true)
    expect(pending.wait(0).transform_values(&:content)).to eq(replies.transform_values(&:content))
  end

  it "asks a group named twice once, and refuses what is not a list of group names" do
    connected_stream(stream_name, "echo")
    expect(sender.send_to_groups(content: 1, to: ["echo", :echo]).keys).to eq(["echo"])
    expect { sender.send_to_groups(content: 1, to: "echo") }.to raise_error(ArgumentError, /Array/)
    expect { sender.send_to_groups(content: 1, to: []) }.to raise_error(ArgumentError, /at least one/)
    expect { sender.send_to_groups(content: 1, to: ["echo", 1]) }.to raise_error(ArgumentError)
    expect { sender.send_to_groups(content: Object.new, to: ["echo"]) }.to raise_error(ArgumentError)
    expect { sender.send_to_groups(content: 1, to: ["echo"], timeout: -1) }.to raise_error(ArgumentError)
    expect { sender.send_to_groups(content: 1, to: ["echo"], fail_fast: 1) }.to raise_error(ArgumentError, /fail_fast/)
    expect { sender.send_to_groups_async(content: 1, to: ["echo"]).wait(-1) }.to raise_error(ArgumentError)
    idle = RedisIPC::Stream.new(stream_name, "idle").on_request { nil }
    expect { idle.send_to_groups(content: 1, to: ["echo"]) }.to raise_error(RedisIPC::ConnectionError)
  end
end
