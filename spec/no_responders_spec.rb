# frozen_string_literal: true

require "spec_helper"

# A send to a group with no live member fails at once with
# NoRespondersError (a TimeoutError) instead of waiting out its timeout
# (ext/redis_ipc/engine/ipc_responders.c); `fail_fast: false` turns it off.
RSpec.describe "no responders", timeout: 90 do
  let(:stream_name) { unique("noresp") }
  let(:client) { connected_stream(stream_name, "client") }

  # Raises what the block raises, and how long it took.
  def timed
    started = monotonic
    yield
    raise "nothing raised"
  rescue RedisIPC::Error => e
    [e, monotonic - started]
  end

  # Sends (the block) until one raises NoRespondersError, for up to `within` seconds; returns that error.
  def no_responders_within(within, &send)
    eventually(within: within) do
      e, = timed(&send)
      e if e.is_a?(RedisIPC::NoRespondersError)
    end
  end

  def xinfo_calls
    stats = raw_redis.info(:commandstats)
    row = stats["xinfo|consumers"] || stats["xinfo"]
    row ? row["calls"].to_i : 0
  end

  it "raises NoRespondersError at once for a group nobody created, a TimeoutError that sends nothing" do
    client
    length = raw_redis.xlen(stream_name)
    error, elapsed = timed { client.send_to_group(content: 1, to: "nobody", timeout: 30) }
    expect(error).to be_a(RedisIPC::NoRespondersError)
    expect(error).to be_a(RedisIPC::TimeoutError)
    expect(error.message).to include("nobody", stream_name)
    # Far below the 30 s timeout (the figure is shown, not asserted).
    puts "\n    no responders: raised after #{(elapsed * 1000).round(1)} ms"
    expect(elapsed).to be < 10
    expect(raw_redis.xlen(stream_name)).to eq(length)
    expect { client.send_to_group_async(content: 1, to: "nobody", timeout: 30) }.to raise_error(RedisIPC::NoRespondersError)
  end

  it "raises it for a group whose every instance disconnected, and not once one connects again" do
    gone = connected_stream(stream_name, "gone")
    expect(client.send_to_group(content: 1, to: "gone").content).to eq(1)
    gone.disconnect
    # Remembered alive for a second at most: until then a send waits its timeout.
    error = eventually do
      e, = timed { client.send_to_group(content: 2, to: "gone", timeout: 0.2) }
      e if e.is_a?(RedisIPC::NoRespondersError)
    end
    expect(error).to be_a(RedisIPC::NoRespondersError)
    connected_stream(stream_name, "gone")
    expect(client.send_to_group(content: 3, to: "gone", timeout: 5).content).to eq(3)
  end

  # Not under valgrind: waits for missed heartbeats; other examples reach its C paths.
  it "raises it once the group's only instance was killed and missed its heartbeats", valgrind: false do
    victim = start_fixture("responder.rb", stream_name, "victim")
    expect(client.send_to_group(content: 1, to: "victim").content).to include(echo: 1)
    Process.kill(:KILL, victim.pid)
    victim.close
    @processes.delete(victim)
    # Alive until its beat is older than dead_after (1.3 s), plus the second it is remembered.
    expect(no_responders_within(10) { client.send_to_group(content: 2, to: "victim", timeout: 2) })
      .to be_a(RedisIPC::NoRespondersError)
  end

  # Not under valgrind: waits past dead_after; other examples reach its C paths.
  it "never fails a send to a group that is alive but slow", valgrind: false do
    connected_stream(stream_name, "slow", consumer: { pool_size: 1 }) do |entry|
      sleep 2 # longer than dead_after: its beats go on from the service thread
      fulfill_request(entry, content: entry.content)
    end
    replies = Array.new(3) { |i| client.send_to_group_async(content: i, to: "slow", timeout: 20) }
    expect(replies.map { |r| r.value.content }).to eq([0, 1, 2])
  end

  it "waits out the timeout with fail_fast: false, per send or for the whole stream" do
    error, = timed { client.send_to_group(content: 1, to: "nobody", timeout: 0.3, fail_fast: false) }
    expect(error.class).to eq(RedisIPC::TimeoutError)
    patient = connected_stream(stream_name, "patient", fail_fast: false)
    error, = timed { patient.send_to_group(content: 1, to: "nobody", timeout: 0.3) }
    expect(error.class).to eq(RedisIPC::TimeoutError)
    error, = timed { patient.send_to_group(content: 1, to: "nobody", timeout: 0.3, fail_fast: true) }
    expect(error.class).to eq(RedisIPC::NoRespondersError)
    pending = patient.send_to_group_async(content: 1, to: "nobody", timeout: 0.3)
    expect { pending.value }.to raise_error { |e| expect(e.class).to eq(RedisIPC::TimeoutError) }
  end

  it "asks Redis about a live group about once a second, not at every send" do
    connected_stream(stream_name, "echo")
    client.send_to_group(content: 0, to: "echo")
    before = xinfo_calls
    started = monotonic
    50.times { |i| expect(client.send_to_group(content: i, to: "echo").content).to eq(i) }
    seconds = monotonic - started
    expect(xinfo_calls - before).to be <= seconds.ceil + 1
  end

  # Not under valgrind: waits for the 1.x member's reads to age; other examples reach its C paths.
  it "counts a 1.x member by its consumers' recent reads", valgrind: false do
    redis = Redis.new(url: redis_url)
    redis.xgroup(:create, stream_name, "legacy", "$", mkstream: true)
    redis.xgroup(:createconsumer, stream_name, "legacy", "dispatcher_abcdef_1")
    # A 1.x dispatcher polls every 10 ms; this one answers one request.
    peer = Thread.new do
      deadline = monotonic + 10
      loop do
        raise "no request" if monotonic > deadline

        result = redis.xreadgroup("legacy", "dispatcher_abcdef_1", stream_name, ">", count: 1)
        entry_id, entry = result&.dig(stream_name, 0)
        next sleep(0.01) unless entry
        next redis.xack(stream_name, "legacy", entry_id) unless entry["destination_group"] == "legacy"

        redis.xadd(stream_name, entry.merge("status" => "fulfilled", "source_group" => "legacy",
                                            "destination_group" => entry["source_group"]))
        redis.xack(stream_name, "legacy", entry_id)
        break
      end
    end
    expect(client.send_to_group(content: "hi", to: "legacy", timeout: 10).content).to eq("hi")
    peer.join
    # Silent for longer than reclaim_idle (10 s): no longer counted.
    expect(no_responders_within(20) { client.send_to_group(content: 1, to: "legacy", timeout: 0.2) })
      .to be_a(RedisIPC::NoRespondersError)
  ensure
    redis&.close
  end

  it "refuses a fail_fast that is not true, false or nil" do
    expect { client.send_to_group(content: 1, to: "x", fail_fast: "yes") }.to raise_error(ArgumentError, /fail_fast/)
    expect { RedisIPC::Stream.new(stream_name, "x").on_request {}.connect(fail_fast: 1) }.to raise_error(ArgumentError, /fail_fast/)
  end
end
