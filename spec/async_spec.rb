# frozen_string_literal: true

require "spec_helper"

RSpec.describe "RedisIPC::Stream#send_to_group_async" do
  let(:stream_name) { unique("async") }

  it "keeps many requests in flight from one thread" do
    connected_stream(stream_name, "echo")
    sender = connected_stream(stream_name, "sender")
    pending = 200.times.map { |i| sender.send_to_group_async(content: i, to: "echo") }
    expect(pending.first).to be_a(RedisIPC::Stream::PendingReply)
    expect(pending.map(&:id).uniq.size).to eq(200)
    expect(pending.map { |p| p.value.content }).to eq((0...200).to_a)
    expect(pending.first.value).to be_fulfilled # repeatable
    expect(pending.all?(&:ready?)).to be(true)
    expect(sender.stats[:ledger_size]).to eq(0)
  end

  it "returns nil from wait(seconds) while the reply has not come, then the reply" do
    _, gate = gated_stream(stream_name, "slow", content: "late")
    reply = connected_stream(stream_name, "sender").send_to_group_async(content: 1, to: "slow")
    expect(reply.wait(0.1)).to be_nil
    expect(reply.wait(0)).to be_nil
    expect(reply).not_to be_ready
    gate << true
    expect(reply.wait(5).content).to eq("late")
  end

  it "raises TimeoutError from value, every time, and frees the slot" do
    sender = connected_stream(stream_name, "sender")
    reply = sender.send_to_group_async(content: 1, to: "nobody", fail_fast: false, timeout: 0.2)
    expect { reply.value }.to raise_error(RedisIPC::TimeoutError, /nobody/)
    expect { reply.value }.to raise_error(RedisIPC::TimeoutError)
    expect(sender.stats[:ledger_size]).to eq(0)
  end

  it "checks its arguments like send_to_group" do
    sender = connected_stream(stream_name, "sender")
    expect { sender.send_to_group_async(content: Object.new, to: "x") }.to raise_error(ArgumentError)
    expect { sender.send_to_group_async(content: 1, to: "") }.to raise_error(ArgumentError)
    expect { sender.send_to_group_async(content: 1, to: "x", timeout: 0) }.to raise_error(ArgumentError)
  end

  it "fails pending replies with ConnectionError on disconnect, and a handle may outlive its stream" do
    sender = RedisIPC::Stream.new(stream_name, "sender").on_request { nil }
    sender.connect(redis_options: { url: redis_url })
    reply = sender.send_to_group_async(content: 1, to: "nobody", fail_fast: false, timeout: 10)
    sender.disconnect
    expect { reply.value }.to raise_error(RedisIPC::ConnectionError)
    orphan = nil
    2.times do
      s = RedisIPC::Stream.new(stream_name, "short").on_request { nil }
      s.connect(redis_options: { url: redis_url })
      orphan = s.send_to_group_async(content: 1, to: "nobody", fail_fast: false, timeout: 10)
      s.disconnect
    end
    GC.start
    expect { orphan.value }.to raise_error(RedisIPC::ConnectionError)
  end

  it "is interruptible while waiting" do
    sender = connected_stream(stream_name, "sender")
    reply = sender.send_to_group_async(content: 1, to: "nobody", fail_fast: false, timeout: 30)
    started = monotonic
    expect { Timeout.timeout(0.2) { reply.value } }.to raise_error(Timeout::Error)
    expect(monotonic - started).to be < 0.7
  end
end

RSpec.describe RedisIPC::PendingRequest do
  # Not under valgrind: mostly waits for the waiter thread to sleep; other examples reach its C paths.
  it "lets only one thread wait on it at a time", valgrind: false do
    stream_name = unique("pending")
    sender = connected_stream(stream_name, "sender")
    native = sender.instance_variable_get(:@engine).send_request_async("nobody", "1", 2.0)
    waiter = Thread.new { native.wait }
    waiter.report_on_exception = false
    sleep 0.1 until waiter.status == "sleep"
    expect { native.wait(0) }.to raise_error(RedisIPC::Error, /already waiting/)
    expect { waiter.value }.to raise_error(RedisIPC::TimeoutError)
  end
end
